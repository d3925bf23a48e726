"""server/sandbox.py: the bwrap command line (a pure function, tested by a table) and real runs of
the training child under real bubblewrap: every family, escapes, limits, orphans, cancellation."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import anyio
import pandas as pd
import pytest

from server.sandbox import HostLayout, SandboxLauncher, build_bwrap_argv, child_environment, discover_layout
from server.sandbox_io import sandbox_processes
from server.settings import PACKAGE_ROOT, SandboxLimits
from tests.training.rundirs import eval_row_ids, write_run_dir, write_score_dir
from tools.errors import SandboxFailed
from training.contract import MODEL_FILES
from training.spec import MODEL_TYPES

LIMITS = SandboxLimits(wall_clock_seconds=120, threads=1)
BASE_LAYOUT = HostLayout(
    bwrap="/usr/bin/bwrap", python="/srv/venv/bin/python", interpreter_prefix="/root/.pyenv/versions/3.11.7",
    venv="/srv/venv", training_dir="/srv/mlgate/training", system_dirs=("/usr",),
    system_links=(("/bin", "usr/bin"), ("/lib", "usr/lib")), etc_files=("/etc/ld.so.cache",),
)
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def pairs(argv: list[str]) -> set[tuple[str, ...]]:
    """Every run of 1 to 5 consecutive arguments, so table rows can name flags and mounts exactly."""
    return {tuple(argv[i : i + n]) for n in range(1, 6) for i in range(len(argv) - n + 1)}


@pytest.mark.parametrize(
    ("layout_changes", "present", "absent"),
    [
        ({}, [("--unshare-net",), ("--unshare-pid",), ("--unshare-ipc",), ("--unshare-uts",), ("--die-with-parent",),
              ("--new-session",), ("--clearenv",), ("--ro-bind", "/usr", "/usr"), ("--symlink", "usr/bin", "/bin"),
              ("--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"), ("--proc", "/proc"), ("--dev", "/dev"),
              ("--tmpfs", "/root"), ("--tmpfs", "/home"), ("--perms", "1777", "--tmpfs"),
              ("--ro-bind", "/root/.pyenv/versions/3.11.7", "/root/.pyenv/versions/3.11.7"),
              ("--ro-bind", "/srv/venv", "/srv/venv"), ("--ro-bind", "/srv/mlgate/training", "/opt/mlgate/training"),
              ("--ro-bind", "/runs/r1/inputs", "/sandbox/inputs"), ("--bind", "/runs/r1/outputs", "/sandbox/outputs"),
              ("--perms", "0755", "--dir"), ("--dir", "/root/.pyenv"), ("--as=8589934592",), ("--nproc=256",)],
         [("--bind", "/runs/r1", "/sandbox"), ("/usr/bin/setpriv",), ("--dev-bind",), ("--share-net",), ("/sys",),
          ("--ro-bind", "/srv/mlgate", "/srv/mlgate")]),
        ({"drop_privileges": True},
         [("/usr/bin/setpriv", "--reuid", "65534"), ("--regid", "65534"), ("--clear-groups",), ("--inh-caps=-all",),
          ("--bounding-set=-all",), ("--no-new-privs",)], []),
        ({"gpu_devices": ("/dev/nvidia0", "/dev/nvidiactl")},
         [("--dev-bind", "/dev/nvidia0", "/dev/nvidia0"), ("--dev-bind", "/dev/nvidiactl", "/dev/nvidiactl"),
          ("--ro-bind", "/sys", "/sys"), ("--as=unlimited",)], [("--as=8589934592",)]),
        ({"interpreter_prefix": "/usr", "venv": "/usr/local/venv"}, [("--ro-bind", "/usr", "/usr")],
         [("--ro-bind", "/usr/local/venv", "/usr/local/venv"), ("--ro-bind", "/root/.pyenv/versions/3.11.7")]),
    ],
    ids=["defaults", "as-root-drops-to-nobody", "gpu-devices-bound", "system-python"],
)
def test_bwrap_argv_table(layout_changes, present, absent):
    layout = dataclasses.replace(BASE_LAYOUT, **layout_changes)
    argv = build_bwrap_argv(layout, Path("/runs/r1"), SandboxLimits(), ENV, info_fd=5)
    windows = pairs(argv)
    assert [item for item in present if item not in windows] == []
    assert [item for item in absent if item in windows] == []
    assert argv.count("/usr") == 2  # bound once, never again for a runtime that lives under it


def test_bwrap_argv_mounts_private_dirs_before_binding_into_them_and_ends_with_the_child():
    argv = build_bwrap_argv(dataclasses.replace(BASE_LAYOUT, drop_privileges=True), Path("/runs/r1"), LIMITS, ENV)
    assert argv.index("/root") < argv.index("/root/.pyenv/versions/3.11.7")
    separator = argv.index("--")
    assert argv[separator + 1] == "/usr/bin/prlimit"
    assert argv[-9:] == ["/srv/venv/bin/python", "-s", "-B", "-m", "training", "--run-dir", "/sandbox", "--stage", "fit"]
    assert argv.index("/usr/bin/setpriv") < argv.index("/srv/venv/bin/python")


@pytest.mark.parametrize(
    ("stage", "present", "absent"),
    [
        ("features", [("--bind", "/runs/r1/built", "/sandbox/built"), ("--stage", "features")],
         [("/runs/r1/outputs",), ("--ro-bind", "/runs/r1/built")]),
        ("fit", [("--ro-bind", "/runs/r1/built", "/sandbox/built"), ("--bind", "/runs/r1/outputs", "/sandbox/outputs"), ("--stage", "fit")],
         [("--bind", "/runs/r1/built")]),
    ],
)
def test_the_features_stage_writes_only_built_and_never_sees_outputs(stage, present, absent):
    """features.py runs only in the features stage, which cannot reach outputs/ where the model and
    predictions are written; the fit stage reads built/ read-only."""
    windows = pairs(build_bwrap_argv(BASE_LAYOUT, Path("/runs/r1"), LIMITS, ENV, stage=stage))
    assert [item for item in present if item not in windows] == []
    assert [item for item in absent if item in windows] == []


@pytest.mark.parametrize(
    ("stage", "present", "absent"),
    [
        ("features", [("--as=8589934592",)], [("--dev-bind",), ("/sys",), ("/dev/nvidia0",), ("--as=unlimited",)]),
        ("fit", [("--dev-bind", "/dev/nvidia0", "/dev/nvidia0"), ("--ro-bind", "/sys", "/sys"), ("--as=unlimited",)], []),
    ],
)
def test_only_the_fit_stage_gets_the_gpu(stage, present, absent):
    """features.py needs no GPU: on a GPU host its stage gets no device nodes, no /sys and the CPU
    address-space cap."""
    layout = dataclasses.replace(BASE_LAYOUT, gpu_devices=("/dev/nvidia0", "/dev/nvidiactl"))
    windows = pairs(build_bwrap_argv(layout, Path("/runs/r1"), SandboxLimits(), ENV, stage=stage))
    assert [item for item in present if item not in windows] == []
    assert [item for item in absent if item in windows] == []


def test_child_environment_is_an_allowlist():
    host = {"MLGATE_TOKEN": "secret", "GITHUB_TOKEN": "x", "AWS_SECRET_ACCESS_KEY": "y", "CUDA_VISIBLE_DEVICES": "0"}
    env = child_environment(SandboxLimits(threads=3), "/opt/mlgate", "/tmp", host)
    assert not [name for name in env if "TOKEN" in name or "SECRET" in name or name.startswith("MLGATE")]
    assert env["PYTHONHASHSEED"] == "0" and env["OMP_NUM_THREADS"] == "3" and env["HOME"] == "/tmp"
    assert env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_missing_bwrap_refuses_to_train_unless_unconfined_is_allowed(tmp_path):
    layout = dataclasses.replace(discover_layout(), bwrap=None)
    refusing = SandboxLauncher(LIMITS, layout=layout)
    assert refusing.mode == "unavailable"
    with pytest.raises(SandboxFailed) as caught:
        anyio.run(refusing.run, write_run_dir(tmp_path / "run"))
    assert caught.value.rule_id == "sandbox.unavailable" and "bubblewrap" in caught.value.remediation
    assert SandboxLauncher(LIMITS, allow_unconfined=True, layout=layout).mode == "unconfined"
    assert not (tmp_path / "run" / "outputs").exists()  # refused before anything was written


# --- real runs ----------------------------------------------------------------------------------

@pytest.fixture
def bwrap() -> None:
    """Sandbox tests fail on CI without bwrap (.ci/run installs it) and skip, saying why, elsewhere."""
    if shutil.which("bwrap") is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap (bwrap) is missing on CI: .ci/run installs it; the sandbox must be tested")
        pytest.skip("bubblewrap (bwrap) is not installed: apt-get install bubblewrap to run the sandbox tests")


@pytest.fixture
def launcher(bwrap) -> SandboxLauncher:
    return SandboxLauncher(LIMITS)


def assert_nothing_left(result) -> None:
    assert result.process_group is not None
    assert sandbox_processes(result.process_group, result.pid_namespace) == set()


def probe(body: str) -> str:
    """A features.py whose build_features runs `body` (indented) and then returns the frame."""
    lines = "\n".join(f"    {line}" for line in body.strip().splitlines())
    return f"import os, socket, sys, time\n\n\ndef build_features(frame):\n{lines}\n    return frame\n"


@pytest.mark.anyio
@pytest.mark.parametrize("model_type", MODEL_TYPES)
async def test_each_family_predicts_every_evaluation_row_in_the_sandbox(launcher, tmp_path, model_type):
    run_dir = write_run_dir(tmp_path / "run", model_type)
    events = []

    async def on_progress(event):
        events.append(event)

    result = await launcher.run(run_dir, on_progress=on_progress)
    assert result.ok, (result.reason, result.detail, result.stderr_tail)
    assert result.mode == "bwrap" and result.result.n_eval_rows == 50
    predictions = pd.read_parquet(run_dir / "outputs" / "predictions.parquet")
    assert predictions["__row_id__"].tolist() == eval_row_ids(run_dir)
    assert events and events[-1].step == events[-1].total and result.progress_events == len(events)
    assert "__label__" not in pd.read_parquet(run_dir / "inputs" / "eval.parquet").columns
    written = sorted(p.name for p in (run_dir / "outputs" / "model").iterdir())
    assert written == sorted({"feature_transform.json", *MODEL_FILES[model_type]})  # what the server copies and logs
    assert_nothing_left(result)


@pytest.mark.anyio
@pytest.mark.parametrize("model_type", ["xgboost", "random_forest"])
async def test_a_trained_model_scores_rows_in_the_sandbox_without_training_rows(launcher, tmp_path, model_type):
    trained = write_run_dir(tmp_path / "run", model_type)
    assert (await launcher.run(trained)).ok
    scoring = write_score_dir(tmp_path / "score", trained)
    result = await launcher.run(scoring)
    assert result.ok, (result.reason, result.detail, result.stderr_tail)
    assert not (scoring / "inputs" / "train.parquet").exists() and result.result.n_train_rows == 0
    scored = pd.read_parquet(scoring / "outputs" / "predictions.parquet")
    pd.testing.assert_frame_equal(scored, pd.read_parquet(trained / "outputs" / "predictions.parquet"), rtol=1e-6)
    assert_nothing_left(result)


@pytest.mark.anyio
async def test_progress_streams_while_the_child_is_still_training(launcher, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", "torch_mlp", params={"epochs": 40, "batch_size": 4, "hidden_sizes": [32]})
    seen_before_result = []

    async def on_progress(event):
        seen_before_result.append(not (run_dir / "outputs" / "result.json").exists())

    result = await launcher.run(run_dir, on_progress=on_progress)
    assert result.ok and len(seen_before_result) == 40 and any(seen_before_result)


@pytest.mark.anyio
async def test_same_inputs_and_seed_give_identical_predictions(launcher, tmp_path):
    for family in ("torch_mlp", "xgboost"):
        runs = [write_run_dir(tmp_path / f"{family}{i}", family, seed=11) for i in (1, 2)]
        for run_dir in runs:
            assert (await launcher.run(run_dir)).ok
        first, second = (pd.read_parquet(r / "outputs" / "predictions.parquet") for r in runs)
        pd.testing.assert_frame_equal(first, second)


@pytest.mark.anyio
async def test_the_child_has_no_network(launcher, tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(
        f"socket.create_connection(('127.0.0.1', {port}), timeout=2)")))
    assert result.reason == "child_error" and result.result.error_type in {"ConnectionRefusedError", "OSError"}
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever reached the host
    listener.close()
    assert_nothing_left(result)


@pytest.mark.anyio
async def test_state_dir_home_and_source_tree_are_not_visible(launcher, tmp_path, workspace):
    secrets = [workspace / ".mlgate" / "tokens.json", Path.home() / f".mlgate-probe-{uuid.uuid4().hex}"]
    for path in secrets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("secret")
    visible = [*secrets, workspace / ".git" / "HEAD", PACKAGE_ROOT / ".git" / "HEAD", PACKAGE_ROOT / "server" / "settings.py"]
    checks = "\n".join(f"if os.path.exists({str(p)!r}): raise RuntimeError('visible')" for p in visible)
    try:
        result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(
            f"{checks}\nopen({str(secrets[1])!r}).read()")))
    finally:
        secrets[1].unlink()
    assert result.reason == "child_error" and result.result.error_type == "FileNotFoundError"


@pytest.mark.anyio
async def test_writes_outside_outputs_fail_and_change_nothing_on_the_host(launcher, tmp_path):
    host_target = tmp_path / "escaped.txt"
    targets = [host_target, "/sandbox/inputs/spec.json", "/opt/mlgate/training/runner.py", "/usr/lib/escaped"]
    attempts = "\n".join(f"try:\n    open({str(t)!r}, 'a').write('x')\n    raise SystemError('escaped')\n"
                         f"except OSError:\n    pass" for t in targets)
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(f"{attempts}\nraise PermissionError()"))
    spec_before = (run_dir / "inputs" / "spec.json").read_bytes()
    result = await launcher.run(run_dir)
    assert result.reason == "child_error" and result.result.error_type == "PermissionError"
    assert not host_target.exists() and (run_dir / "inputs" / "spec.json").read_bytes() == spec_before


@pytest.mark.anyio
async def test_a_fork_bomb_is_bounded_by_the_process_limit(launcher, tmp_path):
    bomb = "while True:\n    if os.fork() == 0:\n        time.sleep(600)"
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(bomb)), timeout_s=60)
    assert result.reason == "process_limit" and result.result.error_type == "ProcessLimitError"
    assert_nothing_left(result)


@pytest.mark.anyio
async def test_allocating_past_the_memory_cap_fails_with_memory_limit(launcher, tmp_path):
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(
        f"blob = bytearray({LIMITS.address_space_bytes})")))
    assert result.reason == "memory_limit" and not result.ok
    assert_nothing_left(result)


@pytest.mark.anyio
async def test_cpu_seconds_are_capped(bwrap, tmp_path):
    launcher = SandboxLauncher(SandboxLimits(cpu_seconds=3, wall_clock_seconds=120, threads=1))
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe("while True:\n    pass")))
    assert result.reason == "cpu_limit" and result.signal == 24
    assert_nothing_left(result)


@pytest.mark.anyio
async def test_files_larger_than_the_cap_cannot_be_written(bwrap, tmp_path):
    launcher = SandboxLauncher(SandboxLimits(file_size_bytes=2**20, wall_clock_seconds=120, threads=1))
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(
        "open('/sandbox/built/big.bin', 'wb').write(bytes(2 * 2**20))")))
    assert result.reason == "file_size_limit" and result.stage == "features"
    assert (tmp_path / "run" / "built" / "big.bin").stat().st_size <= 2**20


@pytest.mark.anyio
async def test_wall_clock_limit_kills_the_whole_sandbox_including_escaped_sessions(launcher, tmp_path):
    marker = f"mlgate-orphan-{uuid.uuid4().hex}"
    with anyio.fail_after(60):
        result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(escaping_sleeper(marker))),
                                    timeout_s=3)
    assert result.reason == "timeout" and "3 s" in result.detail and result.duration_s < 20
    assert_nothing_left(result)
    assert not processes_with(marker)
    follow_up = await launcher.run(write_run_dir(tmp_path / "after", "xgboost"))
    assert follow_up.ok  # the launcher keeps working


@pytest.mark.anyio
async def test_cancellation_kills_the_child(launcher, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(
        "open('/sandbox/built/started', 'w').close()\ntime.sleep(600)"))
    outcome = {}

    async def run_then_record() -> None:
        outcome["result"] = await launcher.run(run_dir)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(run_then_record)
            while not (run_dir / "built" / "started").exists():
                await anyio.sleep(0.05)
            group.cancel_scope.cancel()
    assert "result" not in outcome
    assert _processes_mounting(run_dir) == []


@pytest.mark.anyio
async def test_a_failing_progress_consumer_stops_the_run_and_leaves_nothing_behind(launcher, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", "torch_mlp", params={"epochs": 200, "batch_size": 4})

    async def on_progress(event):
        raise LookupError("tracking store is down")

    with pytest.raises(LookupError):
        await launcher.run(run_dir, on_progress=on_progress)
    assert not (run_dir / "outputs" / "result.json").exists()  # killed mid-training
    assert _processes_mounting(run_dir) == []


@pytest.mark.anyio
async def test_features_that_raise_end_with_the_exception_type(launcher, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", features_source=probe("raise KeyError('income')"))
    result = await launcher.run(run_dir)
    assert not result.ok and result.reason == "child_error" and result.exit_code == 1
    assert result.result.error_type == "KeyError" and "KeyError at src/features.py line 5" in result.detail
    assert "features.py line 5" in (run_dir / "logs" / "child_report.json").read_text()  # the operator's copy
    with pytest.raises(SandboxFailed) as caught:
        result.raise_for_failure()
    assert caught.value.rule_id == "sandbox.child_error" and "src/features.py" in caught.value.remediation


@pytest.mark.anyio
async def test_symlinks_planted_in_outputs_fail_the_run_and_are_not_followed(launcher, tmp_path):
    source = probe("os.symlink('/etc/passwd', '/sandbox/built/leak')\nos.mkfifo('/sandbox/built/pipe')")
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=source))
    assert result.reason == "unsafe_output" and "2 links" in result.detail and "leak" not in result.detail
    assert result.stage == "features"  # the fit stage never read them


@pytest.mark.anyio
async def test_unconfined_mode_runs_the_child_with_the_same_allowlist_and_limits(tmp_path):
    layout = dataclasses.replace(discover_layout(), bwrap=None)
    launcher = SandboxLauncher(LIMITS, allow_unconfined=True, layout=layout)
    os.environ["MLGATE_TEST_SECRET"] = "secret"
    try:
        env_probe = probe("assert not [k for k in os.environ if k.startswith('MLGATE')]\n"
                          "assert os.environ['OMP_NUM_THREADS'] == '1'")
        ok = await launcher.run(write_run_dir(tmp_path / "ok", "xgboost", features_source=env_probe))
    finally:
        del os.environ["MLGATE_TEST_SECRET"]
    assert ok.ok and ok.mode == "unconfined", ok.stderr_tail
    marker = f"mlgate-orphan-{uuid.uuid4().hex}"
    sleeper = probe(f"if os.fork() == 0:\n    time.sleep(600)\n{escaping_sleeper(marker)}")
    timed_out = await launcher.run(write_run_dir(tmp_path / "slow", features_source=sleeper), timeout_s=3)
    assert timed_out.reason == "timeout" and timed_out.mode == "unconfined"
    assert_nothing_left(timed_out)
    assert not processes_with(marker)  # the setsid escape carried the run's environment token


@pytest.mark.anyio
async def test_unconfined_features_that_write_into_outputs_stop_the_run_before_the_fit_stage(tmp_path):
    """Unconfined, the features stage runs on the real run directory: what it leaves in outputs/
    fails the run, and its HOME is not the fit stage's."""
    launcher = SandboxLauncher(LIMITS, allow_unconfined=True, layout=dataclasses.replace(discover_layout(), bwrap=None))
    run_dir = tmp_path / "run"
    planted = probe(f"open({str(run_dir / 'outputs' / 'result.json')!r}, 'w').write('{{}}')\n"
                    "open(os.path.join(os.environ['HOME'], 'planted'), 'w').close()")
    result = await launcher.run(write_run_dir(run_dir, "xgboost", features_source=planted))
    assert (result.ok, result.stage, result.reason) == (False, "features", "invalid_output"), result.detail
    assert (run_dir / "scratch" / "features" / "planted").exists() and not (run_dir / "scratch" / "fit").exists()


def escaping_sleeper(marker: str) -> str:
    """build_features body: a grandchild leaves the session and sleeps under a marked command line."""
    return (f"if os.fork() == 0:\n    os.setsid()\n    os.execv(sys.executable, [sys.executable, '-c', "
            f"'import time; time.sleep(600)', {marker!r}])\ntime.sleep(600)")


def processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def _processes_mounting(run_dir: Path) -> list[str]:
    """Processes whose mount table holds the run's bind mounts: members of that sandbox."""
    needle, found = str(run_dir.resolve()), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle in Path(f"/proc/{pid}/mountinfo").read_text() and Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z":
                found.append(pid)
        except (OSError, IndexError):
            continue
    return found
