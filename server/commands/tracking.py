"""`mlgate tracking migrate --to URI --artifacts DIR`: move the workspace's embedded sqlite MLflow
store into a shared database (server/tracking_migrate.py), keeping every run id; the migration is
recorded in the audit chain and its report (tables, run ids, artifact manifest hash) kept in
`<state_dir>/tracking-migrations/`. The server config is not changed: the command prints the
settings to set, which a human then acknowledges (`mlgate standards accept`). It needs an operator
token (MLGATE_TOKEN in the operator's own shell, or the prompt): the audit record names who moved
the store, by the credential they authenticated with."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from server.audit import AuditChain
from server.cli import add_workspace_option
from server.clock import SystemClock
from policies import Principal
from server.credentials import authenticate
from server.files import write_atomic
from server.settings import load_settings
from server.tracking_migrate import migrate_sqlite
from tools.errors import InvalidInput
from tools.provenance import stable_json
from tools.redact import redact_text


def register(subparsers: Any) -> None:
    tracking = subparsers.add_parser("tracking", help="the MLflow tracking store: migrate the embedded sqlite store to a shared database")
    commands = tracking.add_subparsers(dest="tracking_command", required=True, metavar="SUBCOMMAND")
    migrate = commands.add_parser("migrate", help="copy the sqlite store (run ids kept) into an empty database and the artifacts into DIR")
    migrate.add_argument("--to", required=True, metavar="URI", help="the empty target database (postgresql+psycopg2://USER@HOST:PORT/DB: psycopg2 is the driver mlgate installs), e.g. the tracking server's --backend-store-uri")
    migrate.add_argument("--artifacts", required=True, metavar="DIR", help="where the artifact files are copied (a shared directory, or the server's --artifacts-destination)")
    migrate.add_argument("--artifact-uri", default=None, metavar="URI", help="what artifact locations say afterwards (default: DIR as file://; `mlflow-artifacts:` when DIR is the server's --artifacts-destination)")
    add_workspace_option(migrate, governed=True)
    migrate.set_defaults(handler=migrate_command)


def migrate_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace, transport="cli")
    if settings.tracking_uri:
        print(f"mlgate: this workspace already uses {redact_text(settings.tracking_uri)}; only the embedded sqlite store is migrated", file=sys.stderr)
        return 2
    operator = authenticate(settings.state_dir, ("operator",))
    target = Path(args.artifacts).resolve()
    report = _migrated(settings.state_dir, args, target)
    stamp = SystemClock().now().strftime("%Y%m%dT%H%M%S%fZ")
    document = {"from": "sqlite (state dir)", "to": redact_text(args.to), "artifacts": str(target), "artifact_uri": args.artifact_uri or target.as_uri(), **report.as_dict()}
    path = settings.state_dir / "tracking-migrations" / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = stable_json(document).encode()
    write_atomic(path, data)
    _record(settings.audit_path, document, path, data, operator)
    print(f"migrated {report.tables.get('runs', 0)} runs, {report.tables.get('model_versions', 0)} model versions and {report.artifact_files} artifact files; run ids kept (report: {path})")
    print("next: stop using the sqlite store: set in <state_dir>/server.yaml")
    print(f"  tracking_uri: {redact_text(args.to)}   (or the http:// URL of an mlflow server on that database)")
    print(f"  tracking:\n    artifact_root: {target}   (with a database tracking_uri)")
    print("then acknowledge the changed server config with `mlgate standards accept`")
    return 0


def _migrated(state_dir: Path, args: argparse.Namespace, target: Path) -> Any:
    """migrate_sqlite's report. Raises InvalidInput when the URI's driver is not installed or the
    database cannot be reached (the message carries the URI redacted, never its password)."""
    import sqlalchemy.exc  # noqa: PLC0415 (deferred: comes with MLflow)

    uri = redact_text(args.to)
    try:
        return migrate_sqlite(state_dir / "mlflow.db", state_dir / "mlartifacts", args.to, target, args.artifact_uri)
    except ImportError as exc:
        raise InvalidInput(f"no database driver for {uri} in mlgate's environment (no module {exc.name!r})", "name the installed driver in the URI's scheme: postgresql+psycopg2:// for PostgreSQL; for another database install its driver into mlgate's environment first", rule_id="tracking.driver") from None
    except sqlalchemy.exc.DBAPIError as exc:
        reason = redact_text(str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__)
        raise InvalidInput(f"cannot use the database {uri}: {reason}", "start the database, check host, port, user and database name in --to, then run the command again", rule_id="tracking.unreachable") from None


def _record(audit_path: Path, document: dict[str, Any], path: Path, data: bytes, operator: Principal) -> None:
    chain = AuditChain(audit_path)
    try:
        counts = {name: document["tables"].get(name, 0) for name in ("experiments", "runs", "registered_models", "model_versions", "registered_model_aliases")}
        chain.append({"kind": "outcome", "status": "ok", "tool": "tracking_migrate", "principal": operator.name, "role": operator.role,
                      "credential": operator.credential, "transport": "cli",
                      "to": document["to"], "rows": counts, "artifact_files": document["artifact_files"], "artifact_manifest_sha256": document["artifact_manifest_sha256"],
                      "report": path.name, "report_sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
    finally:
        chain.close()

