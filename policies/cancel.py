"""Rules of cancel_run: who may stop a run, and which runs can be stopped.

Facts are a mapping gathered by tools/cancel_run.py:

    principal     Principal: who asks
    run           {run_id, status, started_by, detached, worker_elsewhere, attached_here}: the run
                  to cancel (started_by: the principal tag it was started with; detached: whether
                  it has a detached worker; worker_elsewhere: its worker lives on another host;
                  attached_here: a live run_experiment call of this server process trains it)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule

SOURCE = "issue 12: detached long runs (cancel_run)"


@rule(
    "cancel.own_run",
    source=SOURCE,
    description="An agent cancels only the runs it started; a human or operator may cancel any run of the project.",
)
def own_run(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal, run = facts["principal"], facts["run"]
    if principal.is_human:
        return Decision.allow("cancel.own_run", f"{principal.role} {principal.name} may cancel any run of the project")
    if run.get("started_by") == principal.name:
        return Decision.allow("cancel.own_run", f"{principal.name} started this run")
    return Decision.deny("cancel.own_run", f"run {run.get('run_id')} was started by another principal", "ask a human to cancel it, or cancel a run you started")


@rule(
    "cancel.running",
    source=SOURCE,
    description=(
        "Only a RUNNING run is cancelled: one in a detached worker, or one trained inside a live run_experiment call of "
        "this server process (a client that lost its connection cannot cancel its own call any more)."
    ),
)
def running(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    run = facts["run"]
    if run.get("status") != "RUNNING":
        return Decision.deny("cancel.running", f"run {run.get('run_id')} is {run.get('status')}, not RUNNING", "nothing to cancel; get_run shows how it ended")
    if run.get("detached"):
        return Decision.allow("cancel.running", "the run is RUNNING in a detached worker")
    if run.get("attached_here"):
        return Decision.allow("cancel.running", "the run is trained inside a live call of this server")
    return Decision.deny(
        "cancel.running",
        f"run {run.get('run_id')} is trained inside a call of another mlgate server process (or one that died; the next server marks it FAILED)",
        "cancel that call from its client, or call cancel_run on the server the call went to",
    )


@rule(
    "cancel.worker_here",
    source=SOURCE,
    description="A detached run's worker is signalled only by a server on its own host; a worker of another host (a replica's) is left to that host's server.",
)
def worker_here(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["run"].get("worker_elsewhere"):
        return Decision.deny("cancel.worker_here", "the run's worker runs on another host", "call cancel_run on the mlgate server of the host that started the run")
    return Decision.allow("cancel.worker_here", "no worker of another host holds the run")
