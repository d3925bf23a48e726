"""cancel_run: the owner (or a human) stops a detached run; the training child is killed, the run
ends KILLED, both sides audited, and a client listening to the run's resource is told it changed. A worker killed outright is settled FAILED by
the server that reaps it, and its run slot is free again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from mcp import Client

from server.app import build_server
from server.audit import read_tail
from server.auth import TokenStore
from server.settings import load_settings
from tests.e2e.transports import mlgate_http, stdio, streamable_http
from tests.tools.detached_lab import detached_records, ended, owner_pid, processes_naming, training_started, wait_for_run
from tests.tools.runs_lab import REASONING, RunsLab, build_runs_lab

pytestmark = pytest.mark.anyio
GONE_S = 60.0

# features.py that never finishes: the run is still training whenever the test acts on it.
SLOW_FEATURES = '''import time

import pandas as pd


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    time.sleep(3600)
    return frame.copy()
'''


@pytest.fixture
def lab(tmp_path: Path) -> RunsLab:
    lab = build_runs_lab(tmp_path)
    (lab.workspace / "src/features.py").write_text(SLOW_FEATURES)
    return lab


async def _detach(lab: RunsLab) -> dict:
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    await wait_for_run(lab.settings, started["run_id"], training_started)
    return started


async def _gone(pids: list[int]) -> None:
    with anyio.fail_after(GONE_S):
        while any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in pids):
            await anyio.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


async def test_cancel_run_kills_the_training_child_and_ends_the_run_killed(lab: RunsLab) -> None:
    started = await _detach(lab)
    run_id, call_id = started["run_id"], started["call_id"]
    other = load_settings(lab.workspace, transport="memory", local_principal="claude")
    is_error, refused = await lab.call("cancel_run", {"run_id": run_id}, other)
    assert is_error and refused["rule_id"] == "cancel.own_run"
    worker = owner_pid(lab.settings, call_id)
    with anyio.fail_after(GONE_S):
        while not [p for p in processes_naming(run_id) if p != worker]:
            await anyio.sleep(0.1)  # the sandboxed child of a stage exists
    children = [p for p in processes_naming(run_id) if p != worker]
    async with Client(build_server(lab.settings, lab.ports)) as client:
        async with client.listen(resource_subscriptions=[f"mlgate://runs/{run_id}"]) as updates:
            result = await client.call_tool("cancel_run", {"run_id": run_id})
            with anyio.fail_after(GONE_S):
                update = await updates.__anext__()  # the worker exited: the run's resource changed
    cancelled = result.structured_content
    assert not result.is_error, cancelled
    assert update.uri == f"mlgate://runs/{run_id}"
    assert (cancelled["status"], cancelled["cancelled"]) == ("KILLED", "cancelled")
    await _gone([worker, *children])
    run = await wait_for_run(lab.settings, run_id, ended)
    assert run["status"] == "KILLED" and "cancel_run" in run["tags"]["mlgate.end_reason"]
    ends = [r for r in detached_records(lab.settings, call_id) if r["event"] == "ended"]
    assert [(r["status"], r["run_id"]) for r in ends] == [("KILLED", run_id)]
    outcome = [r for r in read_tail(lab.settings.audit_path, 200) if r.get("tool") == "cancel_run" and r.get("kind") == "outcome"]
    assert [(r["status"], r["run_id"], r["principal"]) for r in outcome] == [("ok", run_id, lab.settings.local_principal)]
    is_error, again = await lab.call("cancel_run", {"run_id": run_id})
    assert is_error and again["rule_id"] == "cancel.running"


async def test_a_killed_workers_run_is_settled_failed_by_its_live_server_and_frees_its_slot(lab: RunsLab) -> None:
    """SIGKILL (the OOM killer) leaves no chance to end the run: the server that reaps the worker
    settles it, with no restart; the next server has nothing left to reconcile."""
    started = await _detach(lab)
    run_id, call_id = started["run_id"], started["call_id"]
    worker = owner_pid(lab.settings, call_id)
    children = [p for p in processes_naming(run_id) if p != worker]
    os.kill(worker, signal.SIGKILL)
    await _gone([worker, *children])
    run = await wait_for_run(lab.settings, run_id, ended, timeout_s=GONE_S)
    assert run["status"] == "FAILED" and f"detached worker (pid {worker}) exited" in run["tags"]["mlgate.end_reason"]
    assert [r["status"] for r in detached_records(lab.settings, call_id) if r["event"] == "reconciled"] == ["FAILED"]
    assert not (lab.settings.state_dir / "detached" / f"{call_id}.owner.json").exists()
    assert processes_naming(run_id) == []  # a sandbox bwrap was starting as the worker died is gone too
    assert lab.ports.slots.running == 0
    async with stdio(lab.workspace) as client:
        await client.list_tools()
    assert len([r for r in detached_records(lab.settings, call_id) if r["event"] == "reconciled"]) == 1


async def test_an_http_session_ending_leaves_the_detached_run_training_and_a_human_cancels_it(lab: RunsLab) -> None:
    token = TokenStore(lab.settings.state_dir).create("remote-agent", "agent")
    with mlgate_http(lab.settings) as url:
        async with streamable_http(url, token) as client:
            result = await client.call_tool("run_experiment", {"reasoning": REASONING, "detach": True})
        assert not result.is_error, result.structured_content
        run_id, call_id = result.structured_content["run_id"], result.structured_content["call_id"]
        run = await wait_for_run(lab.settings, run_id, training_started)  # after the session ended
        assert run["status"] == "RUNNING" and run["tags"]["principal"] == "remote-agent"
    worker = owner_pid(lab.settings, call_id)
    assert Path(f"/proc/{worker}").exists() and _state(worker) != "Z"  # ... and after the HTTP server stopped
    is_error, cancelled = await lab.call("cancel_run", {"run_id": run_id}, load_settings(lab.workspace, transport="memory", local_principal="alice", local_role="human"))
    assert not is_error and cancelled["status"] == "KILLED"
    await _gone([worker])




def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks (/proc stat field 22), None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


async def _sigterm_until_gone(pid: int) -> None:
    """SIGTERM after SIGTERM, what repeated cancel_run calls send, while `pid` is the same live process."""
    ticks = _start_ticks(pid)
    with anyio.fail_after(GONE_S):
        while ticks is not None and _start_ticks(pid) == ticks:
            os.kill(pid, signal.SIGTERM)
            await anyio.sleep(0.005)


async def test_a_worker_ending_a_cancelled_run_outlasts_repeated_cancels_and_ends_it_killed(lab: RunsLab) -> None:
    started = await _detach(lab)
    run_id, call_id = started["run_id"], started["call_id"]
    worker = owner_pid(lab.settings, call_id)
    async with Client(build_server(lab.settings, lab.ports)) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(_sigterm_until_gone, worker)
            result = await client.call_tool("cancel_run", {"run_id": run_id})
    assert not result.is_error and result.structured_content["status"] == "KILLED", result.structured_content
    run = await wait_for_run(lab.settings, run_id, ended)
    assert run["status"] == "KILLED" and "cancel_run" in run["tags"]["mlgate.end_reason"], run["tags"]
    ends = [r for r in detached_records(lab.settings, call_id) if r["event"] in ("ended", "reconciled")]
    assert [(r["event"], r["status"]) for r in ends] == [("ended", "KILLED")]


async def test_a_run_cancelled_as_its_worker_starts_is_answered_killed_with_its_reason_in_one_call(lab: RunsLab) -> None:
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    run_id, call_id = started["run_id"], started["call_id"]
    is_error, cancelled = await lab.call("cancel_run", {"run_id": run_id})  # the worker is still starting
    assert not is_error, cancelled
    assert cancelled["status"] == "KILLED" and "cancel" in cancelled["end_reason"], cancelled
    assert not (lab.settings.state_dir / "detached" / f"{call_id}.owner.json").exists()
    is_error, again = await lab.call("cancel_run", {"run_id": run_id})
    assert is_error and again["rule_id"] == "cancel.running"


def _catches_sigterm(pid: int) -> bool:
    """Whether `pid` has a handler for SIGTERM (/proc/<pid>/status SigCgt, bit 15)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


async def test_a_worker_signalled_while_it_starts_ends_its_run_killed_itself(lab: RunsLab) -> None:
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    run_id, call_id = started["run_id"], started["call_id"]
    worker = owner_pid(lab.settings, call_id)
    with anyio.fail_after(GONE_S):
        while not _catches_sigterm(worker):
            await anyio.sleep(0.002)
    os.kill(worker, signal.SIGTERM)  # what cancel_run sends, before the worker has taken over its run
    assert [r["event"] for r in detached_records(lab.settings, call_id)] == ["accepted"]
    await _gone([worker])
    run = await wait_for_run(lab.settings, run_id, ended)
    assert run["status"] == "KILLED" and "cancel_run" in run["tags"]["mlgate.end_reason"], run["tags"]
    ends = [r for r in detached_records(lab.settings, call_id) if r["event"] in ("ended", "reconciled")]
    assert [(r["event"], r["status"]) for r in ends] == [("ended", "KILLED")]
    assert not (lab.settings.state_dir / "detached" / f"{call_id}.owner.json").exists()
