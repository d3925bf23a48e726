"""A run as the audit chain recorded it when it finished (server/audit/run_metrics.py): the
tracking store is a file an agent can edit, so the tools that act on a run's figures and pins
(promote, open_pr, reproduce, the champion's scoring) take it only while its metrics, params and artifacts are the recorded ones."""

from __future__ import annotations

from typing import Any

from tools.base import CallContext
from tools.errors import IntegrityError

AGAIN = "run the experiment again: only a run as run_experiment or reproduce finished it counts"


def record_problem(ctx: CallContext, run: dict[str, Any], *, legacy_ok: bool = False) -> str | None:
    """Why the audit chain does not vouch for the run, or None when it does. `legacy_ok`: a run
    finished before runs were chained has no record and still counts (a champion promoted then)
    when the chain shows mlgate evaluated it then (RunMetricsLedger.legacy)."""
    ledger = ctx.ports.run_metrics
    return "this server keeps no record of finished runs' metrics" if ledger is None else ledger.problem(run, unrecorded_ok=legacy_ok)


def vouched_run(ctx: CallContext, run: dict[str, Any], *, legacy_ok: bool = False, remediation: str = AGAIN) -> dict[str, Any]:
    """The run, once the audit chain vouches for it (record_problem). Raises IntegrityError
    (integrity.run_metrics) otherwise."""
    problem = record_problem(ctx, run, legacy_ok=legacy_ok)
    if problem is not None:
        raise IntegrityError(f"run {run['run_id']}: {problem}", remediation, rule_id="integrity.run_metrics")
    return run
