"""Run resources: this project's recent runs, and one run by id (the same view get_run returns).

Read-only, this workspace's experiment only: a run of another project is not found here, decided by
the same rule get_run uses (runs.same_project).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import decide_one
from policies.registry import load_all
from resources.base import ReadContext, ResourceSpec
from tools import strict_json
from tools.errors import NotFound
from tools.run_views import Runs, experiment_of, load_detail, primary_metric, summary

RUNS_URI = "mlgate://runs"
RUN_URI = "mlgate://runs/{run_id}"
RECENT = 20


def recent(tracking: Runs, standards: Mapping[str, Any], limit: int = RECENT) -> dict[str, Any]:
    """The newest `limit` runs of the project, as list_runs rows."""
    experiment, primary = experiment_of(tracking, standards), primary_metric(standards)
    runs = [] if experiment["id"] is None else tracking.search_runs([experiment["id"]], "", ["attributes.start_time DESC"], limit)
    return {"experiment": experiment["name"], "primary_metric": primary, "runs": [summary(r, primary) for r in runs], "count": len(runs)}


def one_run(tracking: Runs, run_artifacts: Any, config: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The run's get_run view. Raises NotFound for an unknown id or a run of another project."""
    standards = config["standards"]
    experiment = experiment_of(tracking, standards)
    run = tracking.get_run(run_id)
    decision = decide_one(load_all()["runs.same_project"], {"experiment": experiment, "runs": [run]}, config)
    if not decision.allowed:
        raise NotFound(decision.reason, decision.remediation, rule_id=decision.rule_id)
    return load_detail(tracking, run_artifacts, run, experiment["name"], primary_metric(standards))


def _recent(ctx: ReadContext, params: Mapping[str, str]) -> str:
    """Raises GovernanceError when the standards cannot be read."""
    return strict_json.dumps(recent(ctx.ports.tracking, ctx.ports.standards.policy_config()["standards"]), sort_keys=True)


def _one(ctx: ReadContext, params: Mapping[str, str]) -> str:
    """Raises NotFound for an unknown run or one of another project."""
    return strict_json.dumps(one_run(ctx.ports.tracking, ctx.ports.run_artifacts, ctx.ports.standards.policy_config(), str(params["run_id"])), sort_keys=True)


SPECS = (
    ResourceSpec(RUNS_URI, "runs", "Recent runs", f"The {RECENT} newest runs of this project: status, outcome, gates_passed, primary test metric with 95% CI, dataset hash, commit.",
                 _recent, requires=("tracking", "standards")),
    ResourceSpec(RUN_URI, "run", "One run", "One run of this project by id, as get_run returns it: provenance, config, metrics with CIs, baselines, outcome, gate receipt, artifacts.",
                 _one, requires=("tracking", "standards")),
)  # fmt: skip
