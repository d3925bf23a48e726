"""Detached runs on the Ray backend: run_experiment(detach=true) through an in-memory MCP client,
the worker process (`python -m server.detached`) joining the cluster with the server's own address
and token (its files and environment: ~/.ray/auth_token or RAY_AUTH_TOKEN, never the request) and
training through it; a cluster nobody answers refuses the call before any worker starts; cancel_run
stops the worker, whose Ray task is cancelled with its child. One real local Ray head
(conftest.ray_cluster), real bwrap, real sqlite MLflow."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest
import yaml

from server.ports import build_ports
from server.settings import load_settings
from tests.acknowledge import accept_standards
from tests.server.test_ray_executor import SLOW_FEATURES, ray_token, sandbox_processes_under
from tests.tools.detached_lab import detached_records, ended, owner_pid, processes_naming, wait_for_run
from tests.tools.runs_lab import REASONING, RunsLab, build_runs_lab

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.anyio
GONE_S = 60.0  # the polite cancel of the Ray task (CANCEL_GRACE_S), the worker's exit, on two busy cores


def on_ray(lab: RunsLab, address: str, scratch: Path) -> RunsLab:
    """The lab's workspace served with executor.backend ray (in the state dir's server.yaml, where a
    detached worker loads it too), the change acknowledged by an operator."""
    executor = {"backend": "ray", "ray": {"address": address, "scratch_dir": str(scratch)}}
    (lab.settings.state_dir / "server.yaml").write_text(yaml.safe_dump({"executor": executor}))
    settings = load_settings(lab.workspace, transport="memory")
    accept_standards(settings)
    return RunsLab(lab.workspace, settings, build_ports(settings), lab.experiment_id)


def closed_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens there


def worker_files(lab: RunsLab) -> str:
    """Everything the call and its worker left in the state dir's detached/ (request, owner, log)."""
    root = lab.settings.state_dir / "detached"
    return "".join(path.read_text(errors="replace") for path in sorted(root.iterdir()) if path.is_file())


async def test_a_detached_run_on_an_unreachable_ray_cluster_is_refused_at_call_time_and_starts_no_worker(tmp_path: Path) -> None:
    if ray.is_initialized():
        pytest.skip("this process already joined a Ray cluster (one per process)")
    address = closed_address()
    lab = on_ray(build_runs_lab(tmp_path), address, tmp_path / "scratch")
    is_error, refused = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert is_error and refused["decision"] == "deny", refused
    # executor.isolation alone: its reason names the cluster, not a bwrap missing on this host
    assert refused["rule_id"] == "executor.isolation" and "denials" not in refused, refused
    assert "no Ray worker answered" in refused["reason"] and "bwrap" not in refused["reason"]
    assert detached_records(lab.settings) == [] and not (lab.settings.state_dir / "detached").exists()
    assert processes_naming(str(lab.settings.state_dir)) == []
    assert lab.ports.tracking.search_runs([lab.experiment_id]) == []
    assert address not in json.dumps(refused) + lab.settings.audit_path.read_text()


async def test_a_detached_run_on_ray_is_trained_by_its_worker_through_the_cluster_as_a_plain_run_on_ray(
    ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    lab = on_ray(build_runs_lab(tmp_path), ray_cluster, scratch)
    is_error, plain = await lab.call("run_experiment", {"reasoning": REASONING})
    assert not is_error, plain
    # From here the server holds the cluster token in its environment only (a home without
    # ~/.ray/auth_token): the worker joins the cluster only with the server's environment. Without
    # the token its probe fails (AuthenticationError) and the run ends FAILED before training.
    token = ray_token()
    assert token, "the test head runs with token authentication"
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error and started["detached"], started
    await wait_for_run(lab.settings, started["run_id"], ended)
    is_error, view = await lab.call("get_run", {"run_id": started["run_id"]})
    assert not is_error and view["status"] == "FINISHED", (view.get("end_reason"), worker_files(lab)[-4000:])
    assert view["detached"]["result"]["metrics"] == plain["metrics"]
    assert view["tags"]["mlgate.executor"] == "ray" and view["tags"]["mlgate.sandbox_mode"] == "bwrap"
    # the host facts are the server's, and said to be: the child ran on a Ray worker node
    assert view["hardware"]["executor"] == "ray" and set(view["hardware"]["server"]) >= {"cpu_model", "cpu_count", "ram_bytes"}
    assert "cpu_count" not in view["hardware"]
    records = detached_records(lab.settings, started["call_id"])
    assert [r["event"] for r in records] == ["accepted", "started", "ended"] and records[-1]["status"] == "FINISHED"
    assert list(scratch.iterdir()) == []  # the Ray worker's run directories are gone
    exposed = json.dumps(view) + worker_files(lab) + lab.settings.audit_path.read_text()
    assert [s for s in (token, ray_cluster) if s in exposed] == []


async def gone_from_ray(scratch: Path, call_id: str) -> None:
    """Waits (bounded) until the cancelled run's Ray task is gone with its bwrap child, the Ray worker
    removed its run directory, the detached worker exited and Ray released the task's CPUs."""
    with anyio.fail_after(GONE_S):
        while sandbox_processes_under(scratch) or list(scratch.iterdir()) or processes_naming(call_id):
            await anyio.sleep(0.1)
        while ray.available_resources().get("CPU", 0) != ray.cluster_resources().get("CPU"):
            await anyio.sleep(0.1)


async def test_cancel_run_of_a_detached_run_on_ray_cancels_its_ray_task_kills_the_child_and_ends_the_run_killed(
    ray_cluster: str, tmp_path: Path,
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    lab = on_ray(build_runs_lab(tmp_path), ray_cluster, scratch)
    (lab.workspace / "src/features.py").write_text(SLOW_FEATURES)  # the child is still training when cancelled
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error and started["detached"], started
    run_id, call_id = started["run_id"], started["call_id"]
    worker = owner_pid(lab.settings, call_id)
    with anyio.fail_after(120):
        while not sandbox_processes_under(scratch):  # the Ray task's bwrap child runs on the worker node
            await anyio.sleep(0.1)
    assert worker in processes_naming(call_id)  # the detached worker's argv names its call
    is_error, cancelled = await lab.call("cancel_run", {"run_id": run_id})
    assert not is_error, cancelled
    # "cancelled": the worker stopped on SIGTERM within the grace, it was not killed by the server
    assert (cancelled["status"], cancelled["cancelled"]) == ("KILLED", "cancelled"), (cancelled, worker_files(lab)[-4000:])
    is_error, view = await lab.call("get_run", {"run_id": run_id})
    assert not is_error and view["status"] == "KILLED" and "cancel_run" in view["end_reason"], view
    records = detached_records(lab.settings, call_id)
    assert [r["event"] for r in records] == ["accepted", "started", "ended"]
    assert (records[-1]["status"], records[-1]["run_id"]) == ("KILLED", run_id)
    await gone_from_ray(scratch, call_id)
    assert lab.ports.slots.running == 0 and not (lab.settings.state_dir / "detached" / f"{call_id}.owner.json").exists()
    exposed = json.dumps(cancelled) + json.dumps(view) + worker_files(lab) + lab.settings.audit_path.read_text()
    assert "SIGTERM received" not in worker_files(lab)  # a cancel is not a crash: no stack dump in the worker's log
    token = ray_token()
    assert token and [s for s in (token, ray_cluster) if s in exposed] == []
