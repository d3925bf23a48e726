"""`mlgate data add|list|verify`: the operator's side of the content-addressed dataset store.

`add WORKSPACE FILE...` (or `add --workspace DIR FILE...`) imports CSV/Parquet files as one dataset, records the import (content and
schema hashes, rows, file base names, the operator and the credential they authenticated with) in
the audit chain and the dataset registry
(server/dataset_registry.py), and prints the content hash (the only line on stdout, for scripts;
details go to stderr). Importing the same bytes again reuses the verified directory and prints the
same hash. Only imported datasets can be loaded or trained on: `list` flags directories under
data/shadow that nobody imported and registry entries the audit chain does not vouch for.

`add` needs an operator token (MLGATE_TOKEN in the operator's own shell, or the hidden prompt;
server/credentials.py): an agent at its own shell cannot import data in the operator's name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from policies import Principal
from server.audit.workspace import open_chain
from server.cas import CasStore
from server.cas_import import Imported, import_dataset
from server.cli import add_workspace_option
from server.commands.governed import os_user
from server.credentials import authenticate
from server.dataset_registry import DatasetRegistry
from server.settings import load_settings, policy_limits
from server.standards import STANDARDS_PATH
from tools.errors import GovernanceError, IntegrityError, InvalidInput


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="add, list and verify content-addressed datasets (operator)")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    add = commands.add_parser(
        "add", help="import CSV/Parquet files into data/shadow/<content hash>/, record the import and print the hash",
        usage="mlgate data add WORKSPACE PATH [PATH ...]\n       mlgate data add --workspace DIR PATH [PATH ...]\n       mlgate data add PATH [PATH ...]   (inside a workspace)",
    )  # fmt: skip
    add.add_argument("items", nargs="+", metavar="PATH", help="the workspace directory (unless --workspace names it; omitted: the current directory), then CSV or Parquet files, imported together as one dataset")
    # --workspace like every other command; the positional WORKSPACE stays (documented, in scripts)
    add.add_argument("--workspace", dest="workspace_option", default=None, metavar="DIR", help="governed workspace (mlgate init DIR); then every PATH is a data file")
    add.epilog = "Needs an operator token issued by an operator (`mlgate token create --role operator`): set MLGATE_TOKEN in your own shell, or run at a terminal to be prompted."
    add.set_defaults(handler=add_command)
    listed = commands.add_parser("list", help="print the registered datasets and flag directories nobody imported")
    add_workspace_option(listed)
    listed.set_defaults(handler=list_command)
    check = commands.add_parser("verify", help="re-hash one dataset (or all) and check its import record; exit 1 when one fails")
    add_workspace_option(check)
    check.add_argument("content_hash", nargs="?", default=None, metavar="HASH", help="64 lowercase hexadecimal characters (default: every dataset)")
    check.set_defaults(handler=verify_command)


def _governed(workspace: str | Path) -> Path:
    root = Path(workspace)
    if not (root / STANDARDS_PATH).is_file():
        raise InvalidInput(f"{workspace} is not a governed workspace (no {STANDARDS_PATH})", "create one with `mlgate init DIR`, or give the right path", rule_id="workspace.missing")
    return root


def registry_for(workspace: str | Path) -> DatasetRegistry:
    settings = load_settings(_governed(workspace))
    return DatasetRegistry(settings.state_dir, settings.audit_path)


def store_for(workspace: str | Path) -> CasStore:
    """The store of a governed workspace, with its registry. Raises InvalidInput for any other directory."""
    return CasStore(_governed(workspace), int(policy_limits()["datasets"]["max_files"]), registry_for(workspace))


def import_files(workspace: str | Path, paths: Sequence[Path | str], principal: Principal | None = None) -> Imported:
    """The operator's import (what `mlgate data add` runs once the operator authenticated): store,
    audit, register. Raises GovernanceError (InvalidInput, IntegrityError) and OSError; see
    server/cas_import.py."""
    store = store_for(workspace)
    audit = open_chain(load_settings(store.workspace))
    try:
        return import_dataset(store, store.registry, audit, list(paths), principal or Principal(os_user(), "operator"))
    finally:
        audit.close()


def add_arguments(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(workspace, data files) of `add --workspace DIR PATH...`, `add WORKSPACE PATH...`, or
    `add FILE...` run inside a workspace: a first PATH that is a directory names the workspace (data
    files are files), so `mlgate data add loans.csv` imports loans.csv into the current directory's.
    Raises InvalidInput when no data file is left."""
    items = list(args.items)
    if args.workspace_option is not None:
        workspace = args.workspace_option
    else:
        workspace = items.pop(0) if Path(items[0]).is_dir() else str(Path.cwd())
    if not items:
        raise InvalidInput("no data file given", "name the workspace and the files: `mlgate data add --workspace DIR FILE.csv` (or `mlgate data add DIR FILE.csv`)", rule_id="data.files_given")
    return workspace, items


def add_command(args: argparse.Namespace) -> int:
    workspace, paths = add_arguments(args)
    operator = authenticate(load_settings(_governed(workspace)).state_dir, ("operator",))
    imported = import_files(workspace, [Path(p) for p in paths], operator)
    added = imported.added
    state = "already present, verified and reused" if added.reused else "imported"
    record = f"import recorded in the audit chain (seq {imported.entry['audit']['seq']})" if imported.registered else "already registered"
    print(f"{state}: {len(added.files)} file(s), {added.rows} rows; schema hash {added.schema_hash}; {record}", file=sys.stderr)
    print(added.content_hash)
    return 0


def dataset_lines(store: CasStore) -> list[tuple[str, str, str]]:
    """(content hash, status, detail) for every registry entry and every directory under
    data/shadow. Status: registered, UNREGISTERED, UNAUDITED or MISSING."""
    entries, problem = store.registry.entries()
    on_disk = set(store.list_hashes())
    lines = [("-", "UNREADABLE", problem)] if problem else []
    for content_hash in sorted(on_disk | set(entries)):
        registration = store.registration(content_hash)
        entry = entries.get(content_hash) or {}
        if not registration["registered"]:
            lines.append((content_hash, "UNREGISTERED", "a directory nobody imported with `mlgate data add`: it cannot be loaded or trained on"))
        elif not registration["audited"]:
            lines.append((content_hash, "UNAUDITED", registration["detail"]))
        elif content_hash not in on_disk:
            lines.append((content_hash, "MISSING", "registered, but no directory under data/shadow"))
        else:
            names = ",".join(str(f.get("name")) for f in entry.get("files") or [])
            credential = registration["credential"] or "no credential"
            lines.append((content_hash, "registered", f"{entry.get('rows')} rows, files {names}, imported by {registration['imported_by']} ({credential}) at {registration['imported_at']}"))
    return lines


def list_command(args: argparse.Namespace) -> int:
    for content_hash, status, detail in dataset_lines(store_for(args.workspace)):
        print(f"{content_hash}\t{status}\t{detail}")
    return 0


def _verify_one(store: CasStore, content_hash: str) -> bool:
    try:
        inspection = store.verify(content_hash)
    except IntegrityError as exc:
        print(f"dataset {content_hash} FAILED [{exc.rule_id}]: {exc.reason}\n  what to do: {exc.remediation}", file=sys.stderr)
        return False
    except GovernanceError as exc:
        if exc.rule_id != "data.registered":
            raise
        print(f"dataset {content_hash} NOT USABLE [{exc.rule_id}]: {exc.reason}\n  what to do: import the source files with `mlgate data add`", file=sys.stderr)
        return False
    print(f"dataset {content_hash} verified: {len(inspection.files)} file(s) match their content hash; imported by {inspection.registration['imported_by']}")
    return True


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0 when the dataset (every dataset) verifies and is registered, 1 otherwise (2: bad
    hash, no dataset)."""
    store = store_for(args.workspace)
    if args.content_hash is not None:
        return 0 if _verify_one(store, args.content_hash) else 1
    lines = dataset_lines(store)
    usable = [h for h, status, _ in lines if status == "registered"]
    flagged = [(h, status, detail) for h, status, detail in lines if status != "registered"]
    for content_hash, status, detail in flagged:
        print(f"dataset {content_hash} {status}: {detail}", file=sys.stderr)
    results = [_verify_one(store, h) for h in usable]
    return 0 if all(results) and not flagged else 1
