"""cancel_run: stop a RUNNING run of this project.

A detached run (run_experiment detach=true): its worker gets SIGTERM, training is cancelled, the
sandbox launcher kills the training child, and the worker ends the MLflow run KILLED and records
`ended` in the audit chain. A worker that does not stop within `training.cancel_grace_seconds`
(configs/policy.yaml) is killed with its session and its run ended KILLED by the server, as is the
run of a worker stopped while it was still starting. The answer is the run's final status (KILLED,
with its reason); a run that could not be ended within the grace periods is answered RUNNING with
a `next` that says so.

A run trained inside a live run_experiment call of this server process is cancelled as the client's
own cancel would (server/attached_runs.py): the sandbox kills the child, the run ends KILLED, and
that call answers `run.cancelled`. It is how a human stops a run whose client went away.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.detached_view import CALL_TAG
from tools.errors import PolicyDenied
from tools.run_views import RUN_ID_PATTERN, experiment_of

DEFAULT_GRACE_S = 30.0


class CancelRunInput(StrictInput):
    run_id: str = Field(description="MLflow run id (32 lowercase hex) of a RUNNING run: a detached one, or one a live run_experiment call of this server trains.", pattern=RUN_ID_PATTERN)
    dry_run: bool = Field(False, description="Check who may cancel and whether the run can be cancelled; stop nothing.")


def gather(request: CancelRunInput, ctx: CallContext) -> dict[str, Any]:
    """The run and who started it. Raises NotFound for an unknown run id (a deny)."""
    tracking, standards = ctx.ports.tracking, ctx.config["standards"]
    run = tracking.get_run(request.run_id)
    tags = run.get("tags") or {}
    call_id = tags.get(CALL_TAG)
    summary = {"run_id": run["run_id"], "status": run["status"], "started_by": tags.get("principal"), "detached": bool(call_id),
               "worker_elsewhere": bool(call_id) and ctx.ports.detached.worker_elsewhere(str(call_id)),
               "attached_here": not call_id and ctx.ports.attached.here(run["run_id"])}
    return {"principal": ctx.principal, "experiment": experiment_of(tracking, standards), "runs": [run], "run": summary, "call_id": call_id}


async def execute(request: CancelRunInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Stop the worker and wait for it; returns the run's final status. Raises PolicyDenied when the
    worker moved to another host's view since gather (cancel.worker_here decided on the facts):
    nothing is stopped then."""
    ports, run_id = ctx.ports, request.run_id
    ctx.audit_refs.update(run_id=run_id)
    grace = float((ctx.config.get("policy") or {}).get("training", {}).get("cancel_grace_seconds", DEFAULT_GRACE_S))
    if not facts["call_id"]:
        how = await ports.attached.cancel(run_id, ctx.principal.name, grace)
        return await _final(ports, run_id, how)
    how = await anyio.to_thread.run_sync(ports.detached.cancel, str(facts["call_id"]), grace)
    if how == "elsewhere":
        raise PolicyDenied("the run's worker runs on another host", "call cancel_run on the mlgate server of the host that started the run", rule_id="cancel.worker_here")
    return await _final(ports, run_id, how)


STILL_ENDING_NEXT = ("the run is not ended yet: its training was stopped but did not end within the grace period; get_run(run_id) "
                     "shows when it is KILLED, and a restarted server ends a run whose worker is gone")


async def _final(ports: Any, run_id: str, how: str) -> dict[str, Any]:
    """The run as it is now: ended KILLED with its reason, or, when it could not be ended within the
    grace period, still RUNNING with what to call next (never RUNNING without saying so)."""
    run = await anyio.to_thread.run_sync(ports.tracking.get_run, run_id)
    answer = {"run_id": run_id, "status": run["status"], "cancelled": how, "end_reason": (run.get("tags") or {}).get("mlgate.end_reason")}
    return answer | ({"next": STILL_ENDING_NEXT} if run["status"] == "RUNNING" else {})


def preview(request: CancelRunInput, facts: dict[str, Any]) -> dict[str, Any]:
    what = "the run's detached worker" if facts["call_id"] else "the run_experiment call training it"
    return {"run_id": request.run_id, "status": facts["run"]["status"], "would": f"cancel {what} (the run ends KILLED)"}


_RULES = load_all()
SPEC = ToolSpec(
    name="cancel_run",
    title="Cancel a detached run",
    description=(
        "Stop a RUNNING run, detached (run_experiment detach=true) or trained inside a live run_experiment call of this "
        "server: the training child is killed and the MLflow run ends KILLED (audited). Agents cancel only runs they "
        "started; humans and operators any run of the project. Returns the run's final status. Use dry_run to check "
        "without stopping anything."
    ),
    input_model=CancelRunInput,
    rules=(_RULES["role.known"], _RULES["runs.same_project"], _RULES["cancel.own_run"], _RULES["cancel.running"], _RULES["cancel.worker_here"]),
    gather=gather,
    execute=execute,
    preview=preview,
    destructive=True,
)
