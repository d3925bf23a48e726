"""get_run: one run of this project, everything an agent needs to judge it (read-only).

Status and end reason, Tier 1 provenance, the config (hyperparameters) and reasoning it ran with,
validation metrics with 95% CIs, cross-validation means, baselines, metric_delta and outcome against
the best prior run, the gate receipt (all on validation rows; the test set is sealed for agents, and
a human reading it here counts one test-set query of the run's dataset), who ran it over which transport, and its artifact list. Never
data rows and never secrets (params and tags are scanned again on the way out). A run of another
project's experiment is not found here (runs.same_project).
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.run_views import RUN_ID_PATTERN, experiment_of, load_detail, primary_metric
from tools.sealed import count_query


class GetRunInput(StrictInput):
    run_id: str = Field(description="MLflow run id (32 lowercase hex), e.g. from list_runs or run_experiment.", pattern=RUN_ID_PATTERN)


def gather(request: GetRunInput, ctx: CallContext) -> dict[str, Any]:
    """The run and this project's experiment. Raises NotFound for an unknown run id (a deny)."""
    tracking, standards = ctx.ports.tracking, ctx.config["standards"]
    return {"principal": ctx.principal, "experiment": experiment_of(tracking, standards), "primary": primary_metric(standards), "runs": [tracking.get_run(request.run_id)]}


async def execute(request: GetRunInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """The run's view; its artifact list and evaluation report are read only once the run is allowed.
    Humans also see the sealed test-set figures, counted as one test-set query."""
    run, ports, reveal = facts["runs"][0], ctx.ports, ctx.principal.is_human
    view = await anyio.to_thread.run_sync(load_detail, ports.tracking, ports.run_artifacts, run, facts["experiment"]["name"], facts["primary"], reveal)
    if reveal and view["test_set"]["metrics"]:
        dataset = (run.get("params") or {}).get("dataset_content_hash")
        view["test_set"]["queries_of_this_dataset"] = await anyio.to_thread.run_sync(lambda: count_query(ports, dataset, purpose="revealed by get_run", run_id=run["run_id"], principal=ctx.principal.name))
    return view


_RULES = load_all()
SPEC = ToolSpec(
    name="get_run",
    title="Get one run",
    description=(
        "One MLflow run of this project by id (read-only): status and end reason, Tier 1 provenance (commit, dirty, "
        "dataset/config/feature/standards hashes, seed), the config and reasoning it ran with, validation metrics with "
        "95% CIs, CV means, baselines, metric_delta and outcome, the gate receipt, principal/transport tags and the "
        "artifact list. Test metrics are sealed (humans see them). Runs of other projects are not found."
    ),
    input_model=GetRunInput,
    rules=(_RULES["role.known"], _RULES["runs.same_project"]),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
