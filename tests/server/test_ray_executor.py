"""The Ray executor against a real local Ray cluster (conftest.ray_cluster, one per module: starting
one takes ~20 s on two cores), real bwrap on the worker, real MLflow, run_experiment through an
in-memory MCP client."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import anyio
import pandas as pd
import pytest
import yaml
from mcp import Client
from pydantic import ValidationError

from server.app import build_server
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.ports import build_ports
from server import ray_worker
from server.ray_connect import bootstrap_address, check_answers
from server.ray_executor import CANCEL_GRACE_S, RayExecutor, WorkerReport, _final, pack_inputs, unpack_outputs
from server.sandbox import REQUIRED_INPUTS
from server.sandbox_io import RunPaths
from server.sandbox_outcome import ChildExit, conclude
from server.settings import ExecutorSettings, RayExecutorSettings, SandboxLimits, load_settings
from tests.acknowledge import accept_standards
from tests.training.rundirs import run_stages, write_run_dir, write_score_dir
from tests.tools.promotion_lab import MODEL
from tests.tools.test_run_experiment import REASONING, _experiments, governed  # noqa: F401 - fixture
from tools.champion_pairing import CHAMPION_PREDICTIONS
from tools.errors import SandboxFailed

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.anyio
SLOW_FEATURES = "import time\n\ndef build_features(frame):\n    time.sleep(120)\n    return frame\n"


def on_ray(governed: dict[str, Any], address: str, scratch: Path, **ray_settings: Any) -> dict[str, Any]:
    """The same workspace served with executor.backend ray, the change acknowledged by an operator."""
    state_dir = governed["settings"].state_dir
    executor = {"backend": "ray", "ray": {"address": address, "scratch_dir": str(scratch), **ray_settings}}
    (state_dir / "server.yaml").write_text(yaml.safe_dump({"executor": executor}))
    settings = load_settings(governed["workspace"], transport="memory")
    accept_standards(settings)
    return {**governed, "settings": settings, "ports": build_ports(settings)}


async def call(governed: dict[str, Any], arguments: dict[str, Any], on_progress: Any = None) -> Any:
    async with Client(build_server(governed["settings"], governed["ports"])) as client:
        return await client.call_tool("run_experiment", arguments, progress_callback=on_progress)


def ray_token() -> str | None:
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    return os.environ.get("RAY_AUTH_TOKEN") or (path.read_text().strip() if path.is_file() else None)


def sandbox_processes_under(scratch: Path) -> list[int]:
    """Live processes whose command line names the scratch dir (bwrap binds the run's inputs from it)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if str(scratch).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(int(pid))
        except OSError:
            continue
    return pids


async def test_an_unreachable_ray_cluster_refuses_the_run_without_naming_its_address(governed: dict[str, Any], tmp_path: Path) -> None:
    if ray.is_initialized():
        pytest.skip("this process already joined a Ray cluster (one per process)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"  # closed again: nothing listens there
    remote = on_ray(governed, address, tmp_path)
    result = await call(remote, {"reasoning": REASONING})
    assert result.is_error and "executor.isolation" in json.dumps(result.structured_content)
    assert address not in json.dumps(result.structured_content) + remote["settings"].audit_path.read_text()
    assert not ray.is_initialized()


async def test_a_run_on_ray_has_the_local_runs_metrics_progress_and_no_ray_credential(
    governed: dict[str, Any], ray_cluster: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    local = await call(governed, {"reasoning": REASONING})
    assert not local.is_error, local.structured_content
    remote = on_ray(governed, ray_cluster, tmp_path / "scratch")
    (tmp_path / "scratch").mkdir()
    assert remote["ports"].sandbox.backend == "ray" and remote["ports"].sandbox.mode == "bwrap"
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    result = await call(remote, {"reasoning": REASONING}, on_progress)
    assert not result.is_error, result.structured_content
    assert result.structured_content["metrics"] == local.structured_content["metrics"]
    assert result.structured_content["sandbox_mode"] == "bwrap"
    assert any(m.startswith("fold-0: round") for m in messages) and any(m.startswith("final: round") for m in messages)
    run = remote["ports"].tracking.get_run(result.structured_content["run_id"])
    assert run["tags"]["mlgate.executor"] == "ray" and run["tags"]["mlgate.sandbox_mode"] == "bwrap"
    assert remote["ports"].tracking.get_run(local.structured_content["run_id"])["tags"]["mlgate.executor"] == "local"
    exposed = [json.dumps(result.structured_content), json.dumps(run, default=str), remote["settings"].audit_path.read_text(), caplog.text]
    secrets = [s for s in (ray_token(), ray_cluster) if s]
    assert secrets and not [s for s in secrets for text in exposed if s in text]
    assert list((tmp_path / "scratch").iterdir()) == []  # the worker's run directories are gone


async def test_a_ray_run_holds_the_gpu_it_asks_for_and_cancelling_kills_the_task_and_its_child(
    governed: dict[str, Any], ray_cluster: str, tmp_path: Path,
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    remote = on_ray(governed, ray_cluster, scratch, num_gpus=1)
    (remote["workspace"] / "src/features.py").write_text(SLOW_FEATURES)
    async with Client(build_server(remote["settings"], remote["ports"])) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: client.call_tool("run_experiment", {"reasoning": REASONING}))
            with anyio.fail_after(120):
                while not sandbox_processes_under(scratch) or ray.available_resources().get("GPU", 0) != 0:
                    await anyio.sleep(0.1)
            group.cancel_scope.cancel()
    with anyio.fail_after(60):
        while sandbox_processes_under(scratch) or list(scratch.iterdir()):
            await anyio.sleep(0.1)
    with anyio.fail_after(60):
        while (runs := remote["ports"].tracking.search_runs(_experiments(remote)))[0]["status"] != "KILLED":
            await anyio.sleep(0.05)
    assert runs[0]["tags"]["mlgate.sandbox_mode"] == "bwrap"
    with anyio.fail_after(30):
        while ray.available_resources().get("GPU", 0) != 1:  # released with the cancelled task
            await anyio.sleep(0.1)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def stop_the_worker_running(scratch: Path, stopped: dict[str, Any]) -> None:
    """SIGSTOPs the Ray worker process that launched bwrap under `scratch` (bwrap's parent) as soon
    as the child runs: a frozen worker that can neither enforce its timeout nor answer."""
    with anyio.fail_after(60):
        while not (sandbox := sandbox_processes_under(scratch)):
            await anyio.sleep(0.05)
    (worker,) = {parent_of(pid) for pid in sandbox} - set(sandbox)
    assert Path(f"/proc/{worker}/cmdline").read_bytes().startswith(b"ray::mlgate-training")
    os.kill(worker, signal.SIGSTOP)
    stopped.update(pid=worker, at=time.monotonic())


def resume(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass  # the forced cancel already killed it


async def test_a_ray_worker_that_stops_answering_is_given_up_by_the_server_as_a_timed_out_run(ray_cluster: str, tmp_path: Path) -> None:
    timeout, grace, scratch = 5.0, 1.0, tmp_path / "scratch"
    scratch.mkdir()
    config = RayExecutorSettings(address=ray_cluster, scratch_dir=scratch, num_gpus=1, result_grace_seconds=grace)
    run_dir = write_run_dir(tmp_path / "run", features_source=SLOW_FEATURES)
    stopped: dict[str, Any] = {}
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(stop_the_worker_running, scratch, stopped)
            with anyio.fail_after(60 + timeout + grace + CANCEL_GRACE_S):
                result = await RayExecutor(config, SandboxLimits(threads=1)).run(run_dir, timeout_s=timeout)
        given_up = time.monotonic() - stopped["at"]
    finally:
        if "pid" in stopped:
            resume(stopped["pid"])
    assert result.reason == "timeout" and not result.ok and f"limit of {timeout:g} s" in result.detail
    assert result.exit_code is None  # no worker reported: the server's deadline ended it, not the worker's timeout
    assert timeout + grace <= result.duration_s and given_up <= timeout + grace + CANCEL_GRACE_S + 5
    with pytest.raises(SandboxFailed) as failed:
        result.raise_for_failure()
    assert failed.value.rule_id == "sandbox.timeout"
    with anyio.fail_after(30):
        while sandbox_processes_under(scratch) or ray.available_resources().get("GPU", 0) != 1 or ray.available_resources().get("CPU", 0) != 2:
            await anyio.sleep(0.1)


async def test_a_run_no_ray_worker_can_take_is_refused_after_the_timeout_and_grace(ray_cluster: str, tmp_path: Path) -> None:
    config = RayExecutorSettings(address=ray_cluster, scratch_dir=tmp_path, num_gpus=2, result_grace_seconds=1)  # the cluster has one GPU
    started = time.monotonic()
    with pytest.raises(SandboxFailed) as refused, anyio.fail_after(2 + CANCEL_GRACE_S + 20):
        await RayExecutor(config, SandboxLimits(threads=1)).run(write_run_dir(tmp_path / "run"), timeout_s=1)
    assert refused.value.rule_id == "sandbox.executor_error" and "within 2 s" in str(refused.value)
    assert 2 <= time.monotonic() - started and list(tmp_path.iterdir()) == [tmp_path / "run"]


@pytest.mark.parametrize(("grace", "valid"), [(0.5, False), (1, True), (3600, True), (3601, False)])
def test_the_result_grace_is_bounded(grace: float, valid: bool) -> None:
    if valid:
        assert RayExecutorSettings(result_grace_seconds=grace).result_grace_seconds == grace
    else:
        with pytest.raises(ValidationError):
            RayExecutorSettings(result_grace_seconds=grace)


ESCAPE_FEATURES = """import socket

def build_features(frame):
    reached = []
    try:
        reached.append(open({token_path!r}).read())
    except OSError:
        pass
    try:
        socket.create_connection(({host!r}, {port}), timeout=2).close()
        reached.append("gcs")
    except OSError:
        pass
    if not reached:
        raise PermissionError("contained")
    return frame
"""


async def test_features_on_a_ray_worker_reach_neither_the_ray_token_nor_the_cluster(governed: dict[str, Any], ray_cluster: str, tmp_path: Path) -> None:
    remote = on_ray(governed, ray_cluster, tmp_path)
    host, port = ray_cluster.rsplit(":", 1)
    token_path = str(Path.home() / ".ray" / "auth_token")
    (remote["workspace"] / "src/features.py").write_text(ESCAPE_FEATURES.format(token_path=token_path, host=host, port=int(port)))
    result = await call(remote, {"reasoning": REASONING})
    assert result.is_error and result.structured_content["rule_id"] == "sandbox.child_error", result.structured_content
    assert "PermissionError" in result.structured_content["reason"]


def test_a_real_gcs_answers_the_check_made_before_joining_it(ray_cluster: str) -> None:
    started = time.monotonic()
    check_answers(bootstrap_address(ray_cluster), 5.0)  # its HTTP/2 SETTINGS, before any token
    assert time.monotonic() - started < 1.0


def test_evaluation_labels_never_leave_the_server(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.inputs.mkdir()
    for name in ("spec.json", "features.py", "train.parquet"):
        (paths.inputs / name).write_bytes(b"")
    pd.DataFrame({"x": [1.0], "__row_id__": [0], "__label__": [1]}).to_parquet(paths.inputs / "eval.parquet")
    with pytest.raises(SandboxFailed) as refused:
        pack_inputs(paths)
    assert refused.value.rule_id == "sandbox.run_dir"


async def test_a_ray_run_on_new_data_scores_the_champion_as_the_local_backend_does(governed: dict[str, Any], ray_cluster: str, tmp_path: Path) -> None:
    champion = (await call(governed, {"reasoning": REASONING})).structured_content
    ports = governed["ports"]
    version = ports.registry.register(MODEL, champion["run_id"], ports.tracking.get_run(champion["run_id"])["artifact_uri"], {})
    ports.registry.point(MODEL, "champion", version, {"run_id": champion["run_id"], "by": "test"})
    later = import_files(governed["workspace"], [write_credit_csv(tmp_path / "later.csv", rows=400, seed=11)]).added.content_hash
    arguments = {"reasoning": REASONING, "config": {"data.dataset": later}}
    local = await call(governed, arguments)
    (tmp_path / "scratch").mkdir()
    remote = await call(on_ray(governed, ray_cluster, tmp_path / "scratch"), arguments)
    scores = []
    for result in (local, remote):
        assert not result.is_error, result.structured_content
        comparison = result.structured_content["champion_comparison"]
        assert comparison["scored"] is True and comparison["champion_run_id"] == champion["run_id"], comparison
        scratch = tmp_path / result.structured_content["run_id"]
        scores.append(pd.read_parquet(ports.tracking.client.download_artifacts(result.structured_content["run_id"], CHAMPION_PREDICTIONS, str(scratch))))
    pd.testing.assert_frame_equal(scores[0], scores[1])
    assert ports.tracking.get_run(remote.structured_content["run_id"])["tags"]["mlgate.executor"] == "ray"
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_score_run_ships_the_models_files_in_place_of_training_rows(tmp_path: Path) -> None:
    trained = write_run_dir(tmp_path / "trained", "logistic_regression")
    assert run_stages(trained) == 0
    packed = pack_inputs(RunPaths(write_score_dir(tmp_path / "score", trained)))
    assert sorted(packed) == ["eval.parquet", "features.py", "model/feature_transform.json", "model/model.json", "spec.json"]
    ray_worker._write_inputs(tmp_path / "worker" / "inputs", packed)
    assert (tmp_path / "worker" / "inputs" / "model" / "model.json").read_bytes() == packed["model/model.json"]


def test_a_ray_worker_runs_the_score_task_in_its_sandbox(tmp_path: Path) -> None:
    trained = write_run_dir(tmp_path / "trained", "random_forest")
    assert run_stages(trained) == 0
    packed = pack_inputs(RunPaths(write_score_dir(tmp_path / "score", trained)))
    answers = list(ray_worker.run_child(packed, SandboxLimits().model_dump(mode="json"), "bwrap", 120.0, str(tmp_path), ray_worker.code_digest()))
    done = answers[-1]
    assert done["kind"] == "done" and done["exit_code"] == 0, done
    scored = pd.read_parquet(io.BytesIO(done["files"]["predictions.parquet"]))
    pd.testing.assert_frame_equal(scored, pd.read_parquet(trained / "outputs" / "predictions.parquet"), rtol=1e-6)


@pytest.mark.parametrize("name", ["../escape", "model/../x", "model/sub/x", "notes.txt", "/etc/passwd"])
def test_a_worker_writes_no_input_but_the_childs_own(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        ray_worker._write_inputs(tmp_path / "inputs", {"spec.json": b"{}", name: b"x"})
    assert not (tmp_path / "inputs").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "model/../../x", "a//b"])
def test_a_worker_report_cannot_write_outside_outputs(tmp_path: Path, name: str) -> None:
    paths = RunPaths(tmp_path / "run")
    for directory in (paths.outputs, paths.logs):
        directory.mkdir(parents=True)
    report = WorkerReport(kind="done", mode="bwrap", exit_code=0, timed_out=False, duration_s=1.0, orphans_killed=0,
                          progress_rejected=0, unsafe=[], files={name: b"x"}, stderr_tail="")
    with pytest.raises(SandboxFailed) as refused:
        unpack_outputs(paths, report)
    assert refused.value.rule_id == "sandbox.unsafe_output" and not (tmp_path / "escape").exists()


def test_a_worker_with_other_training_code_refuses_the_run(tmp_path: Path) -> None:
    inputs = dict.fromkeys(("spec.json", "train.parquet", "eval.parquet", "features.py"), b"")
    answers = list(ray_worker.run_child(inputs, SandboxLimits().model_dump(mode="json"), "bwrap", 60.0, str(tmp_path), "0" * 64))
    assert answers == [{"kind": "refused", "mode": "bwrap"}] and list(tmp_path.iterdir()) == []
    with pytest.raises(SandboxFailed) as refused:
        _final(answers[0])
    assert refused.value.rule_id == "sandbox.unavailable"


def test_the_ray_backend_needs_an_address_and_is_chosen_by_the_config(workspace: Path) -> None:
    with pytest.raises(ValueError, match="executor.ray.address"):
        ExecutorSettings(backend="ray")
    settings = load_settings(workspace, transport="memory", executor={"backend": "ray", "ray": {"address": "127.0.0.1:1"}})
    assert isinstance(build_ports(settings).sandbox, RayExecutor)


LEAVES_FRAMES_THEN_FAILS = (
    "from pathlib import Path\n\ndef build_features(frame):\n"
    "    Path('/sandbox/built/train.parquet').write_bytes(b'x' * 100_000)\n"
    "    Path('/sandbox/built/notes.txt').write_text('left behind')\n"
    "    raise KeyError('income')\n"
)


def test_a_features_stage_failure_on_a_worker_comes_back_as_that_stages_report(tmp_path: Path) -> None:
    """The fit stage never started: the worker sends built/'s report (result.json, not the frames or
    whatever else features.py left there) and says so, and the server judges it from built/ as the
    local launcher does."""
    run_dir = write_run_dir(tmp_path / "source", features_source=LEAVES_FRAMES_THEN_FAILS)
    inputs = {name: (run_dir / "inputs" / name).read_bytes() for name in REQUIRED_INPUTS}
    done = list(ray_worker.run_child(inputs, SandboxLimits().model_dump(mode="json"), "bwrap", 120.0, str(tmp_path), ray_worker.code_digest()))[-1]
    assert (done["kind"], done["stage"], done["exit_code"]) == ("done", "features", 1) and sorted(done["files"]) == ["result.json"]
    paths = RunPaths(tmp_path / "server")
    for made in (paths.built, paths.logs):
        made.mkdir(parents=True)
    (paths.logs / "child.stderr").write_text(done["stderr_tail"])
    unpack_outputs(dataclasses.replace(paths, written="built"), WorkerReport.model_validate(done))
    failed = conclude("bwrap", dataclasses.replace(paths, written="built"), ChildExit(1, False, 120.0, 1.0), None)
    assert (failed.reason, failed.stage, failed.result.error_type) == ("child_error", "features", "KeyError")


def test_a_success_reported_from_the_features_stage_is_not_a_finished_run(tmp_path: Path) -> None:
    """Only the fit stage finishes a run: a SuccessResult in built/ (forged by features.py, or by a
    worker claiming the features stage) leaves the run without a valid result."""
    paths = RunPaths(tmp_path, written="built")
    for made in (paths.built, paths.logs):
        made.mkdir()
    (paths.logs / "child.stderr").write_text("")
    trained = write_run_dir(tmp_path / "trained", "logistic_regression")
    assert run_stages(trained) == 0
    for name in ("result.json", "predictions.parquet"):
        (paths.built / name).write_bytes((trained / "outputs" / name).read_bytes())
    judged = conclude("bwrap", paths, ChildExit(0, False, 120.0, 1.0), None)
    assert not judged.ok and judged.reason == "invalid_output" and judged.stage == "features"
