"""promote's champion comparison: the run against the champion on the same test rows.

The rows are shared when the champion's own test predictions are of the run's test rows (same
dataset and split), or when run_experiment scored the champion's model on them
(tools/champion_scoring.py logs CHAMPION_PREDICTIONS and CHAMPION_COMPARISON on the run). Otherwise
champion_tolerance compares two point estimates, and `unpaired` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.base import CallContext

CHAMPION_PREDICTIONS = "champion_test_predictions.parquet"
CHAMPION_COMPARISON = "champion_comparison.json"


def champion_paired(ctx: CallContext, run: Mapping[str, Any], champion: Mapping[str, Any] | None, metric: str, seed: int) -> dict[str, Any] | None:
    """The run against the champion on the same test rows (paired bootstrap), or None when there is
    no champion or the two did not score the same rows (then the point estimates are compared)."""
    from tools.paired import on_shared_rows, paired_improvement  # noqa: PLC0415 - at first use: a server starts without numpy and pandas (tests/server/commands/test_serve_imports.py)

    reader = getattr(ctx.ports.run_artifacts, "read_predictions", None)
    if champion is None or reader is None or champion["run_id"] == run["run_id"]:
        return None
    shared, note = None, None
    mine, theirs = reader(run["run_id"]), reader(champion["run_id"])
    if mine is not None and theirs is not None:
        shared = on_shared_rows(mine, theirs)
    if shared is None and mine is not None and _rescored_by(ctx, run) == champion["run_id"]:
        rescored = reader(run["run_id"], CHAMPION_PREDICTIONS)
        shared = None if rescored is None else on_shared_rows(mine, rescored)
        note = f"the champion's model (run {champion['run_id'][:12]}) scored this run's test rows when it ran"
    if shared is None:
        return None
    promotion = ctx.config["policy"]["promotion"]
    paired = paired_improvement(*shared, metric, n_samples=int(promotion["paired_bootstrap_samples"]), seed=seed, confidence=float(promotion["gate_confidence"]))
    return paired if note is None else {**paired, "rows_note": note}


def _comparison(ctx: CallContext, run: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's CHAMPION_COMPARISON (tools/champion_scoring.py), {} when it has none."""
    reader = getattr(ctx.ports.run_artifacts, "read_json", None)
    found = reader(run["run_id"], CHAMPION_COMPARISON) if reader is not None else None
    return found if isinstance(found, Mapping) else {}


def _rescored_by(ctx: CallContext, run: Mapping[str, Any]) -> str | None:
    """The champion run whose model scored this run's test rows when it ran, if one did."""
    comparison = _comparison(ctx, run)
    return str(comparison.get("champion_run_id")) if comparison.get("scored") is True else None


def unpaired(ctx: CallContext, run: Mapping[str, Any], champion: Mapping[str, Any]) -> str:
    """Why the champion's test figure comes from other rows than the run's."""
    mine, theirs = run["params"].get("dataset_content_hash"), champion["params"].get("dataset_content_hash")
    where = f"another dataset ({str(theirs)[:12]})" if mine != theirs else "other rows of this dataset (another split) or kept no test predictions"
    return f"the champion was measured on {where}: two point estimates on different rows, not a paired comparison on the same rows{_why_not_scored(ctx, run, champion)}"


def _why_not_scored(ctx: CallContext, run: Mapping[str, Any], champion: Mapping[str, Any]) -> str:
    comparison = _comparison(ctx, run)
    scored_by = comparison.get("champion_run_id")
    if not comparison:
        return "; the run kept no scores of the champion's model on its test rows (it ran before there was this champion, or before champions were scored)"
    if scored_by != champion["run_id"]:
        return f"; its test rows were scored by an earlier champion (run {str(scored_by)[:12]}), not this one: run the experiment again to pair it with this champion"
    if comparison.get("scored") is True:
        return "; its stored scores of the champion's model on its test rows are unreadable or not of its test rows"
    return f"; the champion's model could not score its test rows: {comparison.get('reason')}"
