"""cancel_run on a run trained inside a live run_experiment call (not detached): a human stops it as
the client's own cancel would. The sandboxed child is killed, the run ends KILLED with the reason,
the call answers `run.cancelled`, the slot is free again; another agent is refused, and a run of a
call this server does not hold is refused by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.audit import read_tail
from server.settings import load_settings
from tests.tools.detached_lab import processes_naming, tracking_of
from tests.tools.runs_lab import REASONING, RunsLab, build_runs_lab
from tests.tools.test_cancel_run import GONE_S, SLOW_FEATURES

pytestmark = pytest.mark.anyio
POLL_S = 0.1


@pytest.fixture
def lab(tmp_path: Path) -> RunsLab:
    lab = build_runs_lab(tmp_path)
    (lab.workspace / "src/features.py").write_text(SLOW_FEATURES)
    return lab


def _as(lab: RunsLab, name: str, role: str = "agent") -> Any:
    return load_settings(lab.workspace, transport="memory", local_principal=name, local_role=role)


async def _running_run(lab: RunsLab) -> str:
    """The id of the run the live call trains, once its sandboxed stage has started."""
    tracking = tracking_of(lab.settings)
    with anyio.fail_after(GONE_S):
        while not (runs := await anyio.to_thread.run_sync(lambda: tracking.search_runs([lab.experiment_id], "attributes.status = 'RUNNING'"))):
            await anyio.sleep(POLL_S)
    run_id = runs[0]["run_id"]
    with anyio.fail_after(GONE_S):
        while not processes_naming(run_id):
            await anyio.sleep(POLL_S)  # the sandboxed child of the stage exists
    return run_id


@asynccontextmanager
async def live_call(lab: RunsLab, answers: dict[str, Any]) -> AsyncIterator[str]:
    """A run_experiment call training in the background (its answer lands in answers["call"]);
    yields the run's id once its sandboxed child runs. A failing body cancels the call."""

    async def attached_call() -> None:
        answers["call"] = await lab.call("run_experiment", {"reasoning": REASONING})

    async with anyio.create_task_group() as group:
        group.start_soon(attached_call)
        try:
            yield await _running_run(lab)
        except BaseException:
            group.cancel_scope.cancel()
            raise


async def test_a_human_cancels_a_run_inside_a_live_call_and_the_call_answers_cancelled(lab: RunsLab) -> None:
    answers: dict[str, Any] = {}
    async with live_call(lab, answers) as run_id:
        refused = await lab.call("cancel_run", {"run_id": run_id}, _as(lab, "claude"))
        preview = await lab.call("cancel_run", {"run_id": run_id, "dry_run": True}, _as(lab, "alice", "human"))
        answers["cancel"] = await lab.call("cancel_run", {"run_id": run_id}, _as(lab, "alice", "human"))
    assert refused[0] and refused[1]["rule_id"] == "cancel.own_run", refused
    assert not preview[0] and "run_experiment call" in preview[1]["would"], preview
    is_error, cancelled = answers["cancel"]
    assert not is_error and (cancelled["status"], cancelled["cancelled"]) == ("KILLED", "cancelled"), cancelled
    assert "cancel_run" in cancelled["end_reason"]
    is_error, answer = answers["call"]
    assert is_error and answer["rule_id"] == "run.cancelled" and "alice" in answer["reason"], answer
    assert processes_naming(run_id) == [] and not lab.ports.attached.here(run_id)
    assert lab.ports.slots.running == 0
    outcomes = [r for r in read_tail(lab.settings.audit_path, 200) if r.get("kind") == "outcome" and r.get("run_id") == run_id]
    assert {(r["tool"], r["status"]) for r in outcomes} >= {("cancel_run", "ok")}


async def test_the_agent_that_started_a_run_inside_a_call_may_cancel_it(lab: RunsLab) -> None:
    answers: dict[str, Any] = {}
    async with live_call(lab, answers) as run_id:
        answers["cancel"] = await lab.call("cancel_run", {"run_id": run_id})
    assert not answers["cancel"][0] and answers["cancel"][1]["status"] == "KILLED", answers["cancel"]
    assert answers["call"][0] and answers["call"][1]["rule_id"] == "run.cancelled"


async def test_a_running_run_no_call_of_this_server_trains_is_refused_by_name(lab: RunsLab) -> None:
    tracking = tracking_of(lab.settings)
    run_id = tracking.start_run(lab.experiment_id, {"principal": lab.settings.local_principal})  # RUNNING, held by no call here
    is_error, refused = await lab.call("cancel_run", {"run_id": run_id})
    assert is_error and refused["rule_id"] == "cancel.running" and "another mlgate server process" in refused["reason"], refused
    assert tracking.get_run(run_id)["status"] == "RUNNING"
