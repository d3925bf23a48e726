"""Run resources: this project's recent runs, and one run by id (the same view get_run returns).

Read-only, this workspace's experiment only: a run of another project is not found here, decided by
the same rule get_run uses (runs.same_project).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from policies.registry import load_all
from tools.errors import GovernanceError, NotFound
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
    decision = load_all()["runs.same_project"]({"experiment": experiment, "runs": [run]}, config)
    if not decision.allowed:
        raise NotFound(decision.reason, decision.remediation, rule_id=decision.rule_id)
    return load_detail(tracking, run_artifacts, run, experiment["name"], primary_metric(standards))


def _resource_error(exc: GovernanceError) -> Exception:
    text = f"[{exc.rule_id}] {exc.reason}; what to do: {exc.remediation}"
    return ResourceNotFoundError(text) if isinstance(exc, NotFound) else ResourceError(text)


def register(server: Any, ports: Any) -> None:
    tracking, standards_source = ports.tracking, ports.standards
    if tracking is None or standards_source is None:
        return

    @server.resource(RUNS_URI, name="runs", title="Recent runs", mime_type="application/json",
                     description=f"The {RECENT} newest runs of this project: status, outcome, gates_passed, primary test metric with 95% CI, dataset hash, commit.")  # fmt: skip
    async def runs() -> str:
        try:
            document = await anyio.to_thread.run_sync(lambda: recent(tracking, standards_source.policy_config()["standards"]))
        except GovernanceError as exc:
            raise _resource_error(exc) from exc
        return json.dumps(document, sort_keys=True)

    @server.resource(RUN_URI, name="run", title="One run", mime_type="application/json",
                     description="One run of this project by id, as get_run returns it: provenance, config, metrics with CIs, baselines, outcome, gate receipt, artifacts.")  # fmt: skip
    async def run(run_id: str) -> str:
        try:
            document = await anyio.to_thread.run_sync(lambda: one_run(tracking, ports.run_artifacts, standards_source.policy_config(), run_id))
        except GovernanceError as exc:
            raise _resource_error(exc) from exc
        return json.dumps(document, sort_keys=True)
