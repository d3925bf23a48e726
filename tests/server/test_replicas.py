"""Several mlgate servers writing to one tracking store: two real `mlgate serve --http` processes on
one workspace and state dir, pointed at one MLflow tracking server on PostgreSQL, each running
experiments through a real streamable-HTTP MCP client; and the ownership rule that keeps one
replica from failing a run another live replica is training (server/tracking_owners.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from server.audit import verify
from server.auth import TokenStore
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.liveness import ProcessIdentity
from server.settings import load_settings
from server.tracking import MlflowTracking
from server.tracking_owners import HEARTBEAT_TAG, PID_NS_TAG
from server.workspace import init_workspace
from tests.e2e.transports import REPO_ROOT, streamable_http, wait_for_answer
from tests.postgres import TrackingServer, free_port
from tests.tools.promotion_lab import REASONING
from tests.tools.runs_lab import use_quick_run

pytestmark = pytest.mark.anyio
START_S, RUN_S = 90.0, 300.0


@dataclass
class Replica:
    url: str
    token: str
    process: subprocess.Popen


def _prepare(workspace: Path, scratch: Path) -> None:
    """A small credit dataset and a quick model, committed on main."""
    content_hash = import_files(workspace, [write_credit_csv(scratch / "credit.csv", rows=300)]).added.content_hash
    use_quick_run(workspace, content_hash)
    GitRepo(workspace).commit_all("use the credit dataset")



@contextmanager
def replica(workspace: Path, tracking_url: str, name: str) -> Iterator[Replica]:
    """`mlgate serve --http` as its own process on the shared workspace, with its own agent token."""
    token = TokenStore(workspace / ".mlgate").create(name, "agent")
    port = free_port()
    argv = [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace), "--http", f"127.0.0.1:{port}"]
    env = {**os.environ, "MLGATE_TRACKING_URI": tracking_url}
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_answer(f"http://127.0.0.1:{port}", process, START_S)
        yield Replica(f"http://127.0.0.1:{port}", token, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@dataclass
class Shared:
    workspace: Path
    tracking: MlflowTracking  # this test process: a third process reading and reconciling


@pytest.fixture(scope="module")
def shared(tracking_server: TrackingServer, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    root = tmp_path_factory.mktemp("replicas")
    workspace = init_workspace(root / "ws")
    _prepare(workspace, root)
    return Shared(workspace, MlflowTracking(tracking_server.url, root / "unused-artifacts"))


async def call_run(replica: Replica) -> Any:
    async with streamable_http(replica.url, replica.token) as client:
        with anyio.fail_after(RUN_S):
            return await client.call_tool("run_experiment", {"reasoning": REASONING})


async def run_on(replica: Replica) -> dict[str, Any]:
    result = await call_run(replica)
    assert not result.is_error, result.structured_content
    return result.structured_content


async def test_two_replicas_share_the_run_slot_and_one_tracking_server_and_the_chain_verifies(shared: Shared, tracking_server: TrackingServer) -> None:
    with replica(shared.workspace, tracking_server.url, "agent-a") as a, replica(shared.workspace, tracking_server.url, "agent-b") as b:
        results: dict[str, dict[str, Any]] = {}
        refused: list[str] = []

        async def one(name: str, server: Replica) -> None:
            result = await call_run(server)
            if result.is_error:  # the other replica held the only slot (training.max_concurrent_runs: 1)
                assert result.structured_content["rule_id"] == "training.concurrency", result.structured_content
                refused.append(name)
            else:
                results[name] = result.structured_content

        async with anyio.create_task_group() as group:
            group.start_soon(one, "a", a)
            group.start_soon(one, "b", b)
        assert len(refused) <= 1
        for name in refused:
            results[name] = await run_on({"a": a, "b": b}[name])
        owners = {name: shared.tracking.get_run(results[name]["run_id"])["tags"]["mlgate.server.pid"] for name in results}
        assert owners == {"a": str(a.process.pid), "b": str(b.process.pid)}
    runs = [shared.tracking.get_run(r["run_id"]) for r in results.values()]
    assert all(run["status"] == "FINISHED" for run in runs) and runs[0]["run_id"] != runs[1]["run_id"]
    settings = load_settings(shared.workspace)
    assert verify(settings.audit_path).ok
    outcomes = [r for r in settings.audit_path.read_text().splitlines() if '"kind":"outcome"' in r and '"tool":"run_experiment"' in r]
    assert sum('"status":"ok"' in line for line in outcomes) == 2


async def _running_run_of(tracking: MlflowTracking, pid: int) -> str:
    """The id of the RUNNING run owned by process `pid`, polled until it appears."""
    experiment = tracking.find_experiment("demo-bank/credit-default")
    with anyio.fail_after(RUN_S):
        while True:
            found = tracking.search_runs([experiment], f"attributes.status = 'RUNNING' and tags.`mlgate.server.pid` = '{pid}'") if experiment else []
            if found:
                return found[0]["run_id"]
            await anyio.sleep(0.1)
            experiment = experiment or tracking.find_experiment("demo-bank/credit-default")


async def test_a_run_another_live_replica_is_training_is_not_reconciled_until_that_replica_dies(shared: Shared, tracking_server: TrackingServer) -> None:
    with replica(shared.workspace, tracking_server.url, "agent-c") as c:
        async with anyio.create_task_group() as group:

            async def doomed_call() -> None:
                try:
                    await run_on(c)
                except Exception:  # noqa: BLE001 - the replica is killed mid-call on purpose
                    pass

            group.start_soon(doomed_call)
            run_id = await _running_run_of(shared.tracking, c.process.pid)
            assert shared.tracking.reconcile_orphans() == []
            assert shared.tracking.get_run(run_id)["status"] == "RUNNING"
            os.killpg(c.process.pid, signal.SIGKILL)
            c.process.wait(timeout=30)
    assert run_id in shared.tracking.reconcile_orphans()
    run = shared.tracking.get_run(run_id)
    assert run["status"] == "FAILED" and run["tags"]["mlgate.end_reason"].startswith("orphaned")


# --- the ownership rule on one store (sqlite: fast) ----------------------------------------------


def _store(tmp_path: Path, owner: ProcessIdentity | None = None) -> MlflowTracking:
    return MlflowTracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", owner=owner, heartbeat_s=3600)


def _foreign_run(tmp_path: Path, tags: dict[str, str], *, host: str = "other-host") -> str:
    """A RUNNING run owned by a process that does not exist here (pid 999999 on `host`)."""
    tracking = _store(tmp_path, ProcessIdentity(host, "another-boot", 999_999, "1"))
    run_id = tracking.start_run(tracking.get_or_create_experiment("acme/churn"), {})
    tracking.heartbeat.discard(run_id)
    tracking.set_tags(run_id, tags)
    return run_id


def _ms_ago(seconds: float) -> str:
    return str(int((time.time() - seconds) * 1000))


def test_another_hosts_run_with_a_fresh_heartbeat_is_left_alone_and_a_stale_one_is_failed(tmp_path: Path) -> None:
    fresh = _foreign_run(tmp_path, {HEARTBEAT_TAG: _ms_ago(5)})
    stale = _foreign_run(tmp_path, {HEARTBEAT_TAG: _ms_ago(3600)})
    silent = _foreign_run(tmp_path, {HEARTBEAT_TAG: "none"})
    reconciler = _store(tmp_path)
    assert reconciler.reconcile_orphans() == [stale]
    assert [reconciler.get_run(r)["status"] for r in (fresh, stale, silent)] == ["RUNNING", "FAILED", "RUNNING"]


def test_a_same_named_host_in_another_pid_namespace_is_judged_by_its_heartbeat_not_by_pid(tmp_path: Path) -> None:
    # a container sharing the host name and kernel: its pid 999999 means nothing in this namespace
    here = ProcessIdentity.of(os.getpid())
    alive = _foreign_run(tmp_path, {HEARTBEAT_TAG: _ms_ago(1), PID_NS_TAG: "pid:[1]"}, host=here.host)
    assert _store(tmp_path).reconcile_orphans() == []
    assert _store(tmp_path).get_run(alive)["status"] == "RUNNING"


def test_the_owner_refreshes_the_heartbeat_while_the_run_is_running_and_stops_when_it_ends(tmp_path: Path) -> None:
    tracking = MlflowTracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", heartbeat_s=0.05)
    run_id = tracking.start_run(tracking.get_or_create_experiment("acme/churn"), {})
    first = int(tracking.get_run(run_id)["tags"][HEARTBEAT_TAG])
    deadline = time.monotonic() + 30
    while int(tracking.get_run(run_id)["tags"][HEARTBEAT_TAG]) == first:
        assert time.monotonic() < deadline, "the heartbeat was never refreshed"
        time.sleep(0.05)
    tracking.end_run(run_id, "FINISHED")
    assert tracking.heartbeat.owned() == []
    deadline = time.monotonic() + 30
    while tracking.heartbeat.running:  # nothing left to beat: the thread ends
        assert time.monotonic() < deadline, "the heartbeat thread outlived its last run"
        time.sleep(0.05)
