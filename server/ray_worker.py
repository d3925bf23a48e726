"""The Ray side of the Ray executor (server/ray_executor.py): what a Ray worker runs.

A run's task rebuilds the run directory's inputs/ in a private temporary directory on the worker
node and runs the SAME launcher as the local backend (server.sandbox.SandboxLauncher: bubblewrap,
rlimits, environment allowlist, wall-clock limit) on it, relaying the launcher's progress steps and
finally the child's outputs/. Nothing here judges the child: the server re-gates the progress and
reads the pulled-back outputs itself (server/sandbox_outcome.py). mlgate must be installed on
every worker node at the server's version (the worker imports server.sandbox and training/).

The functions are plain Python; server/ray_executor.py wraps them with ray.remote.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import queue
import signal
import threading
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread

from server.sandbox import MODEL_INPUT, REQUIRED_INPUTS, SandboxLauncher
from server.sandbox_io import read_output_bytes, remove_tree, scan_outputs, stderr_tail
from server.sandbox_result import SandboxResult
from server.sandbox_vocabulary import ProgressStep
from server.settings import SandboxLimits
from tools.errors import SandboxFailed
from training.contract import BUILT_DIR, PREDICTIONS_FILE, RESULT_FILE

RELAY_POLL_S = 0.1
LAUNCHER_MODULES = ("server.sandbox", "server.sandbox_argv", "server.sandbox_io", "server.sandbox_seccomp", "server.ray_worker")
FIRST_SENT = (RESULT_FILE, PREDICTIONS_FILE)


@functools.cache
def code_digest() -> str:
    """SHA-256 of the training package and the launcher's modules: a worker whose digest differs
    from the server's would not run the same `python -m training` under the same launcher."""
    digest = hashlib.sha256()
    training = Path(next(iter(importlib.util.find_spec("training").submodule_search_locations)))
    files = [(f"training/{p.relative_to(training)}", p) for p in sorted(training.rglob("*.py"))]
    files += [(name, Path(importlib.util.find_spec(name).origin)) for name in LAUNCHER_MODULES]
    for name, path in files:
        data = path.read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def probe(limits: dict[str, Any], allow_unconfined: bool) -> dict[str, str]:
    """How this worker node would confine a child, and which code it would run:
    {"mode": "bwrap" | "unconfined" | "unavailable", "code": code_digest()}."""
    return {"mode": SandboxLauncher(SandboxLimits.model_validate(limits), allow_unconfined=allow_unconfined).mode, "code": code_digest()}


def run_child(inputs: dict[str, bytes], limits: dict[str, Any], required_mode: str, timeout_s: float,
              scratch_dir: str | None, required_code: str) -> Iterator[dict[str, Any]]:
    """Yields {"kind": "started"} once this node takes the run (the server's deadline counts from
    it), {"kind": "progress", "step", "metrics"} while the child runs, then one of
    {"kind": "done", ...} (the child's exit and outputs), {"kind": "refused", "mode"} (this node
    cannot confine the child as required, or runs other code than the server) or {"kind": "failed",
    "rule_id"} (the launcher raised).
    Cancelling the task (KeyboardInterrupt, GeneratorExit) cancels the launcher, which kills the
    child; bubblewrap's --die-with-parent kills it should this process die first."""
    _hear_polite_cancel()
    with tempfile.TemporaryDirectory(prefix="mlgate-ray-", dir=scratch_dir) as scratch:
        run_dir = Path(scratch) / "run"
        _write_inputs(run_dir / "inputs", inputs)
        launcher = SandboxLauncher(SandboxLimits.model_validate(limits), allow_unconfined=required_mode == "unconfined")
        if launcher.mode != required_mode or code_digest() != required_code:
            yield {"kind": "refused", "mode": launcher.mode}
            return
        try:
            outcome: dict[str, Any] = {}
            yield {"kind": "started"}
            yield from _relay(launcher, run_dir, timeout_s, outcome)
            yield _report(outcome["result"], run_dir, limits) if "result" in outcome else {"kind": "failed", "rule_id": outcome["rule_id"]}
        finally:
            with contextlib.suppress(OSError):  # what stays is TemporaryDirectory's to remove
                remove_tree(run_dir)  # the child shaped outputs/: rmtree recurses and fails on a deep tree


def _hear_polite_cancel() -> None:
    """Ray's polite cancel is a SIGINT to the worker, raised here as KeyboardInterrupt. A worker that
    inherited SIGINT ignored or blocked (from whatever started `ray start`) would never hear it:
    the task is then killed by force, and its run directory stays on the node."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread; a task on another thread is cancelled by force
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _relay(launcher: SandboxLauncher, run_dir: Path, timeout_s: float, outcome: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Runs the launcher on an event loop in a helper thread and yields its progress as it comes."""
    events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    async def on_progress(step: ProgressStep) -> None:
        events.put({"kind": "progress", "step": step.step, "metrics": dict(step.metrics)})

    with anyio.from_thread.start_blocking_portal() as portal:
        future = portal.start_task_soon(launcher.run, run_dir, timeout_s, on_progress)
        try:
            while not (future.done() and events.empty()):
                try:
                    yield events.get(timeout=RELAY_POLL_S)
                except queue.Empty:
                    continue
        finally:
            future.cancel()  # a no-op once done; otherwise the launcher kills the child on its way out
    try:
        outcome["result"] = future.result()
    except SandboxFailed as exc:
        outcome["rule_id"] = exc.rule_id


def _write_inputs(inputs: Path, files: dict[str, bytes]) -> None:
    """The server's inputs as files; a name other than an input's or a model file's (model/NAME) is
    refused before anything is written."""
    if any(name not in REQUIRED_INPUTS and not MODEL_INPUT.match(name) for name in files):
        raise ValueError("the run's inputs name a file no child is given")
    inputs.mkdir(parents=True)
    for name, data in sorted(files.items()):
        (inputs / name).parent.mkdir(exist_ok=True)
        (inputs / name).write_bytes(data)


def _report(result: SandboxResult, run_dir: Path, limits: dict[str, Any]) -> dict[str, Any]:
    outputs = run_dir / (BUILT_DIR if result.stage == "features" else "outputs")  # where the stage that ended wrote
    plain, unsafe = scan_outputs(outputs)
    if result.stage == "features":
        plain = [name for name in plain if name == RESULT_FILE]  # the server judges only the report; the frames stay here
    files, unreadable = _output_files(outputs, plain, int(limits.get("file_size_bytes") or 2**30))
    return {
        "kind": "done", "mode": result.mode, "stage": result.stage, "exit_code": result.exit_code, "timed_out": result.reason == "timeout",
        "duration_s": result.duration_s, "orphans_killed": result.orphans_killed, "progress_rejected": result.progress_rejected,
        "outputs_overflow": result.reason == "file_size_limit",  # the launcher's outputs guard, or a file past RLIMIT_FSIZE
        "unsafe": sorted({*unsafe, *unreadable}), "files": files, "stderr_tail": stderr_tail(run_dir / "logs" / "child.stderr"),
    }


def _output_files(outputs: Path, plain: list[str], budget: int) -> tuple[dict[str, bytes], list[str]]:
    """{relative path: bytes} of the plain files scan_outputs found (read without following links),
    `budget` bytes in all: sparse files cost the child nothing, and every byte sent is held here and
    on the server. The files the server judges come first; files past the budget are returned as
    unreadable (unsafe to the server)."""
    files: dict[str, bytes] = {}
    unreadable: list[str] = []
    for relative in sorted(plain, key=lambda name: (name not in FIRST_SENT, name)):
        try:
            files[relative] = read_output_bytes(outputs / relative, budget)
            budget -= len(files[relative])
        except OSError:
            unreadable.append(relative)
    return files, unreadable
