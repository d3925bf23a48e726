"""What the project's history says: pure analyses over MLflow run records (query_reasoning,
cost_report and their CLI twins).

A run record is the tracking adapter's plain dict (`run_id`, `status`, `start_time` in ms,
`params`, `metrics`, `tags`). Only FINISHED experiment runs count for reasoning (reproductions
and seed re-runs re-measure, they do not test a hypothesis); every run counts for cost. Metrics
are the validation ones (`val_<metric>`, `metric_delta`): the test set is sealed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
OUTCOMES = ("confirmed", "neutral", "negative")
DESCRIPTION_CHARS = 200
Run = Mapping[str, Any]


def project_of(run: Run) -> str:
    tags = run.get("tags") or {}
    return f"{tags.get('client_name') or '?'}/{tags.get('project_name') or '?'}"


def is_experiment(run: Run) -> bool:
    """A FINISHED run that tested a hypothesis (not a reproduction or seed re-run)."""
    kind = (run.get("tags") or {}).get("mlgate.run_kind", "experiment")
    return run.get("status") == "FINISHED" and kind == "experiment"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def improvement(delta: float, metric: str) -> float:
    """How much better a delta is, whatever the metric's direction (losses improve downwards)."""
    return -delta if metric in LOWER_IS_BETTER else delta


def _primary(run: Run, default: str) -> str:
    params = run.get("params") or {}
    return str(params.get("config.evaluation.primary_metric") or params.get("evaluation.primary_metric") or default)


def top_improvements(runs: Iterable[Run], metric: str, limit: int) -> list[dict[str, Any]]:
    """The changes that moved the primary validation metric most, best first."""
    rows = []
    for run in filter(is_experiment, runs):
        delta = _number((run.get("metrics") or {}).get("metric_delta"))
        if delta is None:
            continue
        params, primary = run.get("params") or {}, _primary(run, metric)
        rows.append({
            "run_id": run["run_id"], "project": project_of(run), "start_time": iso(run.get("start_time")),
            "hypothesis_category": params.get("reasoning.hypothesis_category"),
            "change_description": str(params.get("reasoning.change_description") or "")[:DESCRIPTION_CHARS],
            "metric": primary, "metric_delta": delta, "improvement": improvement(delta, primary), "outcome": (run.get("tags") or {}).get("outcome"),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (-r["improvement"], r["run_id"]))[:limit]


def confirm_rates(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """Per hypothesis category: how many runs, and how many confirmed / neutral / negative."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for run in filter(is_experiment, runs):
        category = (run.get("params") or {}).get("reasoning.hypothesis_category") or "(none)"
        outcome = (run.get("tags") or {}).get("outcome")
        counts[category]  # a category whose runs have no outcome yet still shows, with 0 of each
        if outcome in OUTCOMES:
            counts[category][outcome] += 1
    rows = [{"hypothesis_category": c, "runs": sum(o.values()), **o, "confirm_rate": round(o["confirmed"] / sum(o.values()), 4) if sum(o.values()) else None} for c, o in counts.items()]
    return sorted(rows, key=lambda r: (-(r["confirm_rate"] or 0.0), -r["runs"], r["hypothesis_category"]))


def experiments_to_target(runs: Iterable[Run], metric: str, target: float) -> list[dict[str, Any]]:
    """Per project: how many experiments it took (in start order) until `val_<metric>` reached
    `target` (at or below it for losses); `reached` false when none did."""
    by_project: dict[str, list[Run]] = defaultdict(list)
    for run in filter(is_experiment, runs):
        by_project[project_of(run)].append(run)
    return [_to_target(project, sorted(found, key=lambda r: r.get("start_time") or 0), metric, target) for project, found in sorted(by_project.items())]


def _to_target(project: str, ordered: list[Run], metric: str, target: float) -> dict[str, Any]:
    values = [_number((r.get("metrics") or {}).get(f"val_{metric}")) for r in ordered]
    reached = (lambda v: v <= target) if metric in LOWER_IS_BETTER else (lambda v: v >= target)
    hit = next((i for i, v in enumerate(values) if v is not None and reached(v)), None)
    known = [v for v in values if v is not None]
    best = (min(known) if metric in LOWER_IS_BETTER else max(known)) if known else None
    return {"project": project, "metric": f"val_{metric}", "target": target, "experiments": len(ordered), "reached": hit is not None, "experiments_to_target": None if hit is None else hit + 1, "run_id": None if hit is None else ordered[hit]["run_id"], "best": best}


# --- cost ---------------------------------------------------------------------------------------


def iso(millis: Any) -> str | None:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat() if isinstance(millis, int) else None


def iso_week(millis: Any) -> str:
    if not isinstance(millis, int):
        return "?"
    year, week, _ = datetime.fromtimestamp(millis / 1000, tz=UTC).isocalendar()
    return f"{year}-W{week:02d}"


GROUPS: dict[str, Callable[[Run], str]] = {
    "project": project_of,
    "agent": lambda run: str((run.get("tags") or {}).get("principal") or "?"),
    "week": lambda run: iso_week(run.get("start_time")),
}


def cost_rollup(runs: Iterable[Run], group_by: str) -> list[dict[str, Any]]:
    """Tokens and cost per group (project, agent principal or ISO week), largest cost first.
    cost_per_confirmed is None without a confirmed run or without any run that reported its cost."""
    key = GROUPS[group_by]
    totals: dict[str, dict[str, Any]] = {}
    for run in runs:
        row = totals.setdefault(key(run), {group_by: key(run), "runs": 0, "tokens_used": 0, "estimated_cost": 0.0, "runs_without_cost": 0, "confirmed": 0})
        params = run.get("params") or {}
        tokens, cost = _number(params.get("tokens_used")), _number(params.get("estimated_cost"))
        row["runs"] += 1
        row["tokens_used"] += int(tokens or 0)
        row["estimated_cost"] = round(row["estimated_cost"] + (cost or 0.0), 6)
        row["runs_without_cost"] += cost is None
        row["confirmed"] += (run.get("tags") or {}).get("outcome") == "confirmed"
    for row in totals.values():
        # With no run that reported its cost, 0.0 per confirmed run would read as free, not unknown.
        known = row["confirmed"] and row["runs_without_cost"] < row["runs"]
        row["cost_per_confirmed"] = round(row["estimated_cost"] / row["confirmed"], 6) if known else None
    return sorted(totals.values(), key=lambda r: (-r["estimated_cost"], -r["tokens_used"], str(r[group_by])))


def totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    return {"runs": sum(r["runs"] for r in rows), "tokens_used": sum(r["tokens_used"] for r in rows), "estimated_cost": round(sum(r["estimated_cost"] for r in rows), 6)}
