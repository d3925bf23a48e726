"""run_experiment(detach=true): the run id at once, the run in a worker that outlives the call,
the client, and the server (killed with SIGKILL too); get_run follows it to the same result; a
worker executes only what the audit chain vouches for, once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.detached import REFUSED_EXIT
from server.detached_runs import settings_ref
from tests.e2e.transports import REPO_ROOT, stdio
from server.slots import LEASE_NAME
from tests.tools.detached_lab import POLL_S, WAIT_S, detached_records, ended, owner_pid, processes_naming, start_worker, tracking_of, wait_for_run
from tests.tools.runs_lab import REASONING, RunsLab, build_runs_lab

pytestmark = pytest.mark.anyio
RETURN_S = 60.0  # the call returns after gather/decide/start: no training inside it
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture
def lab(tmp_path: Path) -> RunsLab:
    return build_runs_lab(tmp_path)


async def test_a_detached_run_returns_at_once_and_get_run_follows_it_to_the_result_of_a_plain_run(lab: RunsLab) -> None:
    is_error, plain = await lab.call("run_experiment", {"reasoning": REASONING})
    assert not is_error, plain
    with anyio.fail_after(RETURN_S):
        is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    assert (started["status"], started["detached"]) == ("RUNNING", True) and started["run_id"] != plain["run_id"]
    is_error, view = await lab.call("get_run", {"run_id": started["run_id"]})
    assert not is_error and view["status"] == "RUNNING" and view["detached"]["result"] is None
    await wait_for_run(lab.settings, started["run_id"], ended)
    is_error, view = await lab.call("get_run", {"run_id": started["run_id"]})
    assert view["status"] == "FINISHED", view.get("end_reason")
    result = view["detached"]["result"]
    assert result["run_id"] == started["run_id"] and result["metrics"] == plain["metrics"]
    # what the view beside it already shows is named, not repeated: together they are the plain call's result
    same = view["detached"]["same_as_view"]
    assert {"split", "columns", "fairness"} <= set(same) and not set(same) & set(result)
    whole = {field: view[field] for field in same} | result
    assert set(whole) == set(plain) and whole["split"] == plain["split"] and whole["fairness"] == plain["fairness"]
    assert view["detached"]["progress"]["fraction"] == 1.0
    async with Client(build_server(lab.settings, lab.ports)) as client:
        resource = await client.read_resource(f"mlgate://runs/{started['run_id']}")
    assert json.loads(resource.contents[0].text)["detached"] == view["detached"]  # the run resource shows the same
    events = [r["event"] for r in detached_records(lab.settings, started["call_id"])]
    assert events == ["accepted", "started", "ended"]
    # The same call id again, as an agent's shell would start it: a detached request runs once.
    replay = start_worker(lab.settings, started["call_id"])
    assert replay.returncode == REFUSED_EXIT and "already started" in replay.stderr


async def test_a_forged_detached_request_is_refused_by_the_worker(lab: RunsLab) -> None:
    """The agent writes a request file of its own and starts the worker on it: no chain record
    vouches for it, so nothing runs and the refusal is audited."""
    call_id = "f" * 32
    root = lab.settings.state_dir / "detached"
    root.mkdir(parents=True, exist_ok=True)
    forged = {"call_id": call_id, "run_id": "0" * 32, "principal": {"name": "risk-officer", "role": "human"}, "transport": "stdio",
              "arguments": {"reasoning": REASONING, "config": {"split.test_size": 0.5}}, "pins": {}, "settings": settings_ref(lab.settings)}  # fmt: skip
    (root / f"{call_id}.json").write_text(json.dumps(forged))
    refused = start_worker(lab.settings, call_id)
    assert refused.returncode == REFUSED_EXIT and "no accepted detached run" in refused.stderr
    assert [(r["event"], r["call_id"]) for r in detached_records(lab.settings)] == [("refused", call_id)]
    is_error, listed = await lab.call("list_runs", {})
    assert not is_error and listed["runs"] == []


def _raw_server(workspace: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace)]
    return subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _get_run_raw(server: subprocess.Popen, run_id: str) -> dict:
    """initialize + get_run over the server's stdin/stdout, as a client does."""
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_run", "arguments": {"run_id": run_id}}}
    server.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in (INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}, call)))
    server.stdin.flush()
    answers = [json.loads(server.stdout.readline()) for _ in range(2)]
    return answers[1]["result"]["structuredContent"]


async def test_a_detached_run_outlives_its_stdio_client_and_a_server_killed_with_sigkill(lab: RunsLab) -> None:
    async with stdio(lab.workspace) as client:
        with anyio.fail_after(RETURN_S):
            result = await client.call_tool("run_experiment", {"reasoning": REASONING, "detach": True})
    # The client is gone and its server exited with it; the worker trains on.
    assert not result.is_error, result.structured_content
    run_id = result.structured_content["run_id"]
    server = _raw_server(lab.workspace)
    try:
        view = await anyio.to_thread.run_sync(_get_run_raw, server, run_id)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    assert view["status"] == "RUNNING", view
    # A new server after the SIGKILL reconciles at start: the live worker's run stays RUNNING.
    async with stdio(lab.workspace) as client:
        await client.list_tools()
        run = await wait_for_run(lab.settings, run_id, ended)
        final = await client.call_tool("get_run", {"run_id": run_id})
    assert run["status"] == "FINISHED", run["tags"].get("mlgate.end_reason")
    assert final.structured_content["detached"]["result"]["run_id"] == run_id


def _held_until_the_run_ends(lab: RunsLab, seen: dict[str, Any]) -> None:
    """Let `launch` return (and the call release its slot lease) only once the worker's run ended:
    the worker decides training.concurrency while the launching call still holds the lease."""
    launch = lab.ports.detached.launch

    def held(**request: Any) -> str:
        call_id = launch(**request)
        seen["worker"] = owner_pid(lab.settings, call_id)
        seen["running"] = lab.ports.slots.running  # the lease and the live worker: one run, counted twice
        leases = [p for p in (lab.settings.state_dir / "slots").iterdir() if LEASE_NAME.fullmatch(p.name)]
        seen["leases"] = [json.loads(p.read_text()).get("run_id") for p in leases]
        tracking, deadline = tracking_of(lab.settings), time.monotonic() + WAIT_S
        while tracking.get_run(request["run_id"])["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(POLL_S)  # polling a real store, bounded by WAIT_S
        seen["held_at_end"] = all(p.exists() for p in leases)
        return call_id

    lab.ports.detached.launch = held


async def test_a_detached_run_trains_on_the_only_slot_while_its_call_still_holds_that_slots_lease(lab: RunsLab) -> None:
    """max_concurrent_runs 1: the worker decides before the call has given its lease back; the lease
    names the worker's own run, so the worker is not refused by training.concurrency."""
    assert lab.ports.standards.policy_config()["policy"]["training"]["max_concurrent_runs"] == 1
    seen: dict[str, Any] = {}
    _held_until_the_run_ends(lab, seen)
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    assert seen["leases"] == [started["run_id"]] and seen["held_at_end"]  # held, naming the run, throughout
    assert seen["running"] == 2  # others see the one run twice meanwhile: briefly over-counted, never under
    run = await wait_for_run(lab.settings, started["run_id"], ended, timeout_s=1.0)
    assert run["status"] == "FINISHED", run["tags"].get("mlgate.end_reason")
    with anyio.fail_after(RETURN_S):
        while seen["worker"] in processes_naming(started["call_id"]):  # it records `ended`, then exits and is reaped
            await anyio.sleep(POLL_S)
    assert [r["event"] for r in detached_records(lab.settings, started["call_id"])] == ["accepted", "started", "ended"]
    assert lab.ports.slots.running == 0
