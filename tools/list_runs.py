"""list_runs: the runs of this project's MLflow experiment, filtered and sorted (read-only).

Only this workspace's experiment (`<client_name>/<project_name>`) is searched; a project that has
not trained yet has no experiment and lists no runs (the lookup never creates one). Every filter is
a Literal or a bounded number, so the MLflow filter string is built from known text only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.run_views import RUN_KIND_TAG
from tools.run_views import OUTCOMES, RUN_KINDS, STATUSES, experiment_of, primary_metric, summary

MAX_RESULTS = 100
# The sort keys are the metrics the server computes (tools/evaluation.METRICS), test-checked.
SortKey = Literal["start_time", "roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "brier"]


class ListRunsInput(StrictInput):
    status: Literal[STATUSES] | None = Field(None, description="Only runs with this MLflow status (RUNNING, FINISHED, FAILED, KILLED); omit for all.")
    outcome: Literal[OUTCOMES] | None = Field(None, description="Only runs whose outcome against the best prior run was this (confirmed, neutral, negative).")
    run_kind: Literal[RUN_KINDS] | None = Field(None, description="Only experiments, or only reproductions and seed re-runs; omit for both.")
    min_primary_metric: float | None = Field(None, ge=-1e6, le=1e6, allow_inf_nan=False, description="Only runs whose primary validation metric (the standards' gates.primary_metric) is at least this.")
    sort_by: SortKey = Field("start_time", description="Sort by start_time or by a validation metric named as in evaluation.metrics (roc_auc, pr_auc, ...; test metrics are sealed).")
    ascending: bool = Field(False, description="Smallest first (default: largest/newest first).")
    max_results: int = Field(20, ge=1, le=MAX_RESULTS, description=f"At most this many runs (1-{MAX_RESULTS}).")


def search_filter(request: ListRunsInput, primary: str) -> str:
    """The MLflow filter for the request (built only from Literal values and a float)."""
    conditions = []
    if request.status is not None:
        conditions.append(f"attributes.status = '{request.status}'")
    if request.outcome is not None:
        conditions.append(f"tags.outcome = '{request.outcome}'")
    if request.run_kind is not None:
        conditions.append(f"tags.`{RUN_KIND_TAG}` = '{request.run_kind}'")
    if request.min_primary_metric is not None:
        conditions.append(f"metrics.`val_{primary}` >= {request.min_primary_metric!r}")
    return " and ".join(conditions)


def order_by(request: ListRunsInput) -> list[str]:
    direction = "ASC" if request.ascending else "DESC"
    if request.sort_by == "start_time":
        return [f"attributes.start_time {direction}"]
    return [f"metrics.`val_{request.sort_by}` {direction}", "attributes.start_time DESC"]


def gather(request: ListRunsInput, ctx: CallContext) -> dict[str, Any]:
    """The matching runs (blocking MLflow calls; the enforcer runs this in a worker thread)."""
    tracking, standards = ctx.ports.tracking, ctx.config["standards"]
    experiment, primary = experiment_of(tracking, standards), primary_metric(standards)
    runs = [] if experiment["id"] is None else tracking.search_runs([experiment["id"]], search_filter(request, primary), order_by(request), request.max_results)
    return {"principal": ctx.principal, "experiment": experiment, "primary": primary, "runs": runs}


async def execute(request: ListRunsInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    rows = [summary(run, facts["primary"]) for run in facts["runs"]]
    return {"experiment": facts["experiment"]["name"], "primary_metric": facts["primary"], "filter": search_filter(request, facts["primary"]) or None, "runs": rows, "count": len(rows)}


_RULES = load_all()
SPEC = ToolSpec(
    name="list_runs",
    title="List this project's runs",
    description=(
        "List the MLflow runs of this project (read-only): filter by status, outcome, run kind and a floor on the "
        "primary validation metric; sort by start time or a validation metric. Each row: run_id, name, status, start_time, "
        "principal, outcome, gates_passed, the primary validation metric with its 95% CI, dataset hash, commit, dirty. "
        "Test metrics are sealed: models are selected on validation rows."
    ),
    input_model=ListRunsInput,
    rules=(_RULES["role.known"],),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
