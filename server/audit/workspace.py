"""The audit chain of one workspace: opened with its signer, cross-checked with its witnesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.audit.chain import AuditChain
from server.audit.crosscheck import CrossReport, crosscheck
from server.audit.overrides import OVERRIDES_LOG
from server.audit.records import AuditOptions
from server.audit.signing import Signer, pinned_public_key
from server.audit.witness import Witness, chain_id, mlflow_runs, pr_witnesses, registry_witnesses, run_witnesses
from server.settings import Settings, policy_limits
from tools.redact import redact_text


def open_chain(settings: Settings, clock: Any = None) -> AuditChain:
    """The workspace's chain, signing its anchored heads when the signing key file exists.

    Raises IntegrityError when the chain is damaged (server/audit/chain.py).
    """
    options = AuditOptions.from_config(policy_limits().get("audit", {}))
    return AuditChain(settings.audit_path, clock=clock, options=options, signer=Signer(settings.audit_signing_key))


def crosscheck_workspace(settings: Settings) -> CrossReport:
    """Every witness this process can reach, the signed heads, the pinned key and the workspace's
    overrides log, against the chain."""
    notes: list[str] = []
    witnesses = [*pr_witnesses(settings.state_dir / "prs"), *registry_witnesses(settings.state_dir / "registry" / "aliases.json")]
    witnesses += _mlflow_witnesses(settings, notes)
    pinned = pinned_public_key(settings.audit_signing_key)
    report = crosscheck(settings.audit_path, witnesses, pinned, settings.workspace / OVERRIDES_LOG)
    if report.key_id is not None and pinned is None:
        notes.append(f"the chain's key {report.key_id} was not compared with a pinned copy: no {settings.audit_signing_key.name}.pub readable beside the configured key path")
    report.notes.extend(notes)
    return report


def _mlflow_witnesses(settings: Settings, notes: list[str]) -> list[Witness]:
    uri = settings.mlflow_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return []  # no store yet; opening it would create one
    try:
        return list(run_witnesses(_runs(settings), chain_id(settings.audit_path)))
    except Exception as exc:  # noqa: BLE001 - an unreachable store is reported as unchecked, not as damage
        notes.append(f"MLflow runs at {redact_text(uri)} were not checked ({type(exc).__name__})")
        return []


def _runs(settings: Settings) -> Iterator[dict[str, Any]]:
    from server.tracking import MlflowTracking  # noqa: PLC0415 (deferred: MLflow is slow to import)

    return mlflow_runs(MlflowTracking(settings.mlflow_uri, settings.state_dir / "mlartifacts").client)


def print_crosscheck(settings: Settings) -> bool:
    """Prints the cross-check of the workspace's chain (one line per finding, then a summary);
    True when nothing disagreed."""
    report = crosscheck_workspace(settings)
    for line in report.lines():
        print(line)
    return report.ok
