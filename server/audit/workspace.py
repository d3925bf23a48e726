"""The audit chain of one workspace: opened with its signer, cross-checked with its witnesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.audit.chain import AuditChain
from server.audit.crosscheck import CrossReport, Finding, crosscheck
from server.audit.overrides import OVERRIDES_LOG
from server.audit.records import AuditOptions
from server.audit.run_metrics import RunMetricsLedger, run_findings
from server.audit.signing import Signer, pinned_public_key
from server.audit.witness import CHAIN_TAG, chain_id, mlflow_runs, pr_witnesses, registry_witnesses, run_witnesses
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
    runs = _mlflow_runs(settings, notes)
    witnesses += list(run_witnesses(iter(runs), chain_id(settings.audit_path)))
    pinned = pinned_public_key(settings.audit_signing_key)
    report = crosscheck(settings.audit_path, witnesses, pinned, settings.workspace / OVERRIDES_LOG)
    ledger = RunMetricsLedger(settings.audit_path)
    found = run_findings(_this_chain(runs, settings), ledger.all(), ledger.legacy())
    report.findings += [Finding(kind, detail) for kind, detail in found]
    if report.key_id is not None and pinned is None:
        notes.append(f"the chain's key {report.key_id} was not compared with a pinned copy: no {settings.audit_signing_key.name}.pub readable beside the configured key path")
    report.notes.extend(notes)
    return report


def _mlflow_runs(settings: Settings, notes: list[str]) -> list[dict[str, Any]]:
    uri = settings.mlflow_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return []  # no store yet; opening it would create one
    try:
        return list(_runs(settings))
    except Exception as exc:  # noqa: BLE001 - an unreachable store is reported as unchecked, not as damage
        notes.append(f"MLflow runs at {redact_text(uri)} were not checked ({type(exc).__name__})")
        return []


def _this_chain(runs: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The runs this chain witnessed (a shared tracking server holds other workspaces' runs too)."""
    chain = chain_id(settings.audit_path)
    return [r for r in runs if chain is None or r["tags"].get(CHAIN_TAG, chain) == chain]


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
