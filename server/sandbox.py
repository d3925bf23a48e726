"""The sandbox launcher: runs the untrusted training child (`python -m training`) under bubblewrap,
in two sandboxes one after the other: the features stage (the only one importing features.py;
writes built/) and the fit stage (reads built/, writes outputs/). Command lines: server/sandbox_argv.py.

Each sees read-only system directories, the interpreter, the virtualenv and the training
package, its run's inputs/ read-only and its stage's directory writable, a private /tmp, and nothing else: no
network, no home, no workspace, no .git, no state directory. It runs as an unprivileged uid with
rlimits, in its own pid namespace and process group, and is killed as a whole on a wall-clock
timeout, on cancellation, and after it exits (stragglers). Run-directory layout: training/__init__.py.
Nothing the child writes reaches the caller as text: progress and failures are worded by the server
(server/sandbox_vocabulary.py) and success facts bounded (server/sandbox_facts.py).

Without bwrap the launcher refuses (SandboxFailed, rule sandbox.unavailable) unless the settings
allow `sandbox_mode: unconfined`; then the child runs directly with the same environment allowlist,
rlimits and process group, and `launcher.mode` says "unconfined" so the caller can audit it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL
from typing import IO

import anyio
from anyio.abc import Process

from server.sandbox_argv import (
    NOBODY, RUN_UIDS, SANDBOX_TRAINING_ROOT, HostLayout, build_bwrap_argv, build_unconfined_argv, child_environment, discover_layout,
)
from server.sandbox_io import OutputsGuard, ProgressTail, RunPaths, audit_outputs, kill_group, kill_pids, prepare_run_dir, sandbox_processes
from server.sandbox_leftovers import forget_sandbox, record_namespace, record_sandbox
from server.sandbox_outcome import ChildExit, conclude
from server.sandbox_result import Mode, SandboxResult
from server.sandbox_seccomp import filter_program
from server.sandbox_vocabulary import ProgressGate, ProgressStep, plan_for, read_spec
from server.settings import SandboxLimits, Settings
from tools.errors import SandboxFailed
from training.contract import LIFELINE_VARIABLE, PROGRESS_FILE, Stage

REQUIRED_INPUTS = ("spec.json", "train.parquet", "eval.parquet", "features.py")  # the fit_predict task's
SCORE_INPUTS = ("spec.json", "eval.parquet", "features.py")  # and the trained model's files, model/NAME
MODEL_INPUT = re.compile(r"^model/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
PROGRESS_POLL_S = 0.1
KILL_DEADLINE_S = 10.0
RUN_TOKEN_VARIABLE = "SANDBOX_RUN_TOKEN"
ProgressCallback = Callable[[ProgressStep], Awaitable[None]]


def required_inputs(inputs: Path) -> tuple[str, ...]:
    """The inputs a child gets: for the score task (training/scoring.py) the trained model's files
    (model/NAME) in place of training rows, for any other spec the fit_predict task's four."""
    spec = read_spec(inputs / "spec.json")
    if spec is None or spec.task != "score":
        return REQUIRED_INPUTS
    model = inputs / "model"
    names = sorted(f"model/{p.name}" for p in model.iterdir() if p.is_file() and not p.is_symlink()) if model.is_dir() else []
    return (*SCORE_INPUTS, *(name for name in names if MODEL_INPUT.match(name)))


def _filter_fd() -> int | None:
    """The read end of a pipe holding this machine's seccomp program (bwrap reads it to EOF), or None
    on a machine the filter does not know (server/sandbox_seccomp.py)."""
    program = filter_program(platform.machine())
    if program is None:
        return None
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, program)  # under 1 KB: within a pipe's buffer, so this never blocks
    finally:
        os.close(write_end)
    return read_end


@dataclass(frozen=True)
class _Launch:
    """What both stages of one run share: the mode, the run directory, the log files, the uid, the deadline."""

    mode: Mode
    paths: RunPaths
    streams: tuple[IO[bytes], IO[bytes]]
    uid: int
    deadline: float  # time.monotonic() by which both stages must have ended


@dataclass(frozen=True)
class _StageEnd:
    exit_code: int | None
    timed_out: bool
    orphans: int
    group: int
    pid_namespace: int | None
    overflow: bool

    def failed(self, paths: RunPaths) -> bool:
        """Whether the features stage ended so that the fit stage must not start: any exit but 0,
        the deadline, too much disk, links and special files in built/, or anything in outputs/
        (unmounted in bwrap; in unconfined mode the features stage could reach it)."""
        return (self.exit_code != 0 or self.timed_out or self.overflow or bool(audit_outputs(paths.built))
                or any(paths.outputs.iterdir()))


@dataclass
class _Child:
    process: Process
    group: int
    pid_namespace: int | None = None
    sandbox_init: int | None = None  # bwrap's pid 1 inside the namespace; it outlives the child briefly
    environ_token: bytes | None = None  # unconfined: an environment entry every descendant inherits
    info_fd: int | None = None  # bwrap --info-fd pipe, read once the sandbox exists
    lifeline: int | None = None  # the write end of the child's lifeline (training/lifeline.py), closed once it is gone


class SandboxLauncher:
    """Runs one training child per call; safe to call concurrently for different run directories.
    The local backend of server/executors.Executor."""

    backend = "local"

    def __init__(self, limits: SandboxLimits, allow_unconfined: bool = False, layout: HostLayout | None = None) -> None:
        self.limits = limits
        self.layout = layout or discover_layout()
        self.allow_unconfined = allow_unconfined

    @classmethod
    def from_settings(cls, settings: Settings) -> SandboxLauncher:
        return cls(settings.sandbox, allow_unconfined=settings.sandbox_mode == "unconfined")

    @property
    def mode(self) -> Mode:
        """bwrap when installed; unconfined only where bwrap is missing and the settings allow it."""
        if self.layout.bwrap:
            return "bwrap"
        return "unconfined" if self.allow_unconfined else "unavailable"

    async def run(self, run_dir: Path, timeout_s: float | None = None, on_progress: ProgressCallback | None = None) -> SandboxResult:
        """Run the child's two stages on run_dir, each in a sandbox of its own: `features` (the only
        one that imports features.py; writes built/) and, once it has ended with every process it
        started, `fit` (reads built/, writes outputs/). Raises SandboxFailed when the sandbox is
        unavailable, the run directory is malformed, or a stage's processes cannot all be killed.
        A failed run is a SandboxResult with ok=False, not an exception. Cancellation kills the
        child. on_progress gets server-worded steps bounded by inputs/spec.json, never the child's text."""
        mode = self._require_mode()
        uid = secrets.choice(RUN_UIDS) if self.layout.run_uids else NOBODY  # used only where the layout drops privileges
        paths = prepare_run_dir(run_dir, required_inputs(Path(run_dir) / "inputs"), mode == "bwrap" and self.layout.drop_privileges, uid)
        timeout = min(timeout_s or math.inf, self.limits.wall_clock_seconds)
        started = time.monotonic()
        spec = read_spec(paths.inputs / "spec.json")
        tail = ProgressTail(paths.outputs / PROGRESS_FILE, ProgressGate(plan_for(spec)))
        try:
            with (paths.logs / "child.stdout").open("wb") as out, (paths.logs / "child.stderr").open("wb") as err:
                launch = _Launch(mode, paths, (out, err), uid, started + timeout)
                features = await self._stage(launch, "features", None, None)
                failed = features.failed(paths)
                fit = features if failed else await self._stage(launch, "fit", tail, on_progress)
        finally:
            tail.close()
        ended = ChildExit(fit.exit_code, fit.timed_out, timeout, time.monotonic() - started, tail.delivered, tail.rejected,
                          features.orphans + (0 if failed else fit.orphans), fit.group, fit.pid_namespace, outputs_overflow=fit.overflow)
        return conclude(mode, paths.of_failed_features_stage() if failed else paths, ended, spec)

    async def _stage(self, launch: _Launch, stage: Stage, tail: ProgressTail | None, on_progress: ProgressCallback | None) -> _StageEnd:
        """One stage's sandbox, from spawn until every process of it is gone."""
        paths = launch.paths
        guard = OutputsGuard(paths.built if stage == "features" else paths.outputs, self.limits.file_size_bytes)
        child = await self._spawn(launch, stage)
        try:
            record_sandbox(paths.logs, child.group, child.environ_token)  # before waiting on it: a launcher killed now leaves it
            with anyio.move_on_after(max(launch.deadline - time.monotonic(), 0)) as deadline:
                await _identify(child)
                record_namespace(paths.logs, child.sandbox_init, child.pid_namespace)
                await self._stream(child, tail, on_progress, guard)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    orphans = await self._kill_all(child)
                    forget_sandbox(paths.logs)
                finally:  # also when processes survived (sandbox.orphans): no descriptor left open
                    os.close(child.lifeline)
        overflow = guard.tripped or await anyio.to_thread.run_sync(guard.measure)  # what it wrote since the last check
        return _StageEnd(child.process.returncode, deadline.cancelled_caught, orphans, child.group, child.pid_namespace, overflow)

    def _require_mode(self) -> Mode:
        if self.mode == "unavailable":
            raise SandboxFailed(
                "bubblewrap (bwrap) is not installed, so training cannot be sandboxed",
                "Install bubblewrap (apt-get install bubblewrap), or have an operator set sandbox_mode: "
                "unconfined in the server config (weaker isolation, audited on every run).",
                rule_id="sandbox.unavailable",
            )
        return self.mode

    async def _spawn(self, launch: _Launch, stage: Stage) -> _Child:
        """The child, holding the read end of its lifeline; its one writer stays here (not inherited)."""
        lifeline_read, lifeline_write = os.pipe()
        try:
            child = await self._start(launch, stage, lifeline_read)
        except BaseException:
            os.close(lifeline_write)
            raise
        finally:
            os.close(lifeline_read)
        child.lifeline = lifeline_write
        return child

    async def _start(self, launch: _Launch, stage: Stage, lifeline: int) -> _Child:
        paths, (out, err) = launch.paths, launch.streams
        if launch.mode == "unconfined":
            scratch = paths.scratch / stage  # a HOME and TMPDIR per stage: the features stage's files are not the fit's
            scratch.mkdir(parents=True, exist_ok=True)
            env = child_environment(self.limits, str(Path(self.layout.training_dir).parent), str(scratch), os.environ)
            env[RUN_TOKEN_VARIABLE], env[LIFELINE_VARIABLE] = secrets.token_hex(16), str(lifeline)
            argv = build_unconfined_argv(self.layout, paths.run_dir, self.limits, stage)
            process = await anyio.open_process(argv, stdin=DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True, pass_fds=(lifeline,))
            return _Child(process, process.pid, environ_token=f"{RUN_TOKEN_VARIABLE}={env[RUN_TOKEN_VARIABLE]}".encode())
        env = {**child_environment(self.limits, SANDBOX_TRAINING_ROOT, "/tmp", os.environ), LIFELINE_VARIABLE: str(lifeline)}
        info_read, info_write = os.pipe()
        seccomp = _filter_fd()
        try:
            argv = build_bwrap_argv(self.layout, paths.run_dir, self.limits, env, info_fd=info_write, uid=launch.uid,
                                    seccomp_fd=seccomp, stage=stage)
            process = await anyio.open_process(argv, stdin=DEVNULL, stdout=out, stderr=err, env={"PATH": "/usr/bin:/bin"},
                                               start_new_session=True, pass_fds=(info_write, lifeline, *([seccomp] if seccomp is not None else [])))
        except BaseException:
            os.close(info_read)
            raise
        finally:
            for fd in (info_write, seccomp):
                if fd is not None:
                    os.close(fd)
        return _Child(process, process.pid, info_fd=info_read)

    async def _stream(self, child: _Child, tail: ProgressTail | None, on_progress: ProgressCallback | None, guard: OutputsGuard) -> None:
        """Hand new progress lines to on_progress until the child exits, then the last ones; returns
        early (the caller kills the child) once what it writes takes more disk than the guard allows."""
        while True:
            with anyio.move_on_after(PROGRESS_POLL_S):
                await child.process.wait()
            for event in tail.read_new() if tail is not None else ():
                if on_progress is not None:
                    await on_progress(event)
            if child.process.returncode is not None or await guard.check():
                return

    async def _kill_all(self, child: _Child) -> int:
        """SIGKILL every process of the run until none is left; returns how many outlived the child.
        Raises SandboxFailed (sandbox.orphans) if some survive KILL_DEADLINE_S."""
        deadline, orphans = time.monotonic() + KILL_DEADLINE_S, set()
        while True:
            members = sandbox_processes(child.group, child.pid_namespace, child.environ_token) - {child.process.pid}
            running = child.process.returncode is None
            if not running:
                orphans |= members - {child.sandbox_init}
            if not members and not running:
                return len(orphans)
            if time.monotonic() > deadline:
                raise SandboxFailed(f"{len(members)} sandbox processes survived SIGKILL", "An operator should check the host.",
                                    rule_id="sandbox.orphans")
            if members:
                kill_pids(members)  # the sandbox's processes first, so bwrap can reap its own init
            else:
                kill_group(child.group)
            with anyio.move_on_after(0.05):
                await child.process.wait()


async def _identify(child: _Child) -> None:
    """Learn the sandbox's pid namespace, which its processes cannot leave (setsid can leave a group)."""
    if child.info_fd is None:
        return
    info = await anyio.to_thread.run_sync(_read_info, child.info_fd, abandon_on_cancel=True)
    child.pid_namespace, child.sandbox_init = info.get("pid-namespace"), info.get("child-pid")


def _read_info(fd: int) -> dict[str, int]:
    """bwrap writes {"child-pid": N, "pid-namespace": INODE, ...} once the sandbox exists; {} if it failed."""
    with os.fdopen(fd, "rb") as pipe:
        data = pipe.read(65536)
    try:
        info = json.loads(data)
        return {key: int(info[key]) for key in ("child-pid", "pid-namespace")}
    except (ValueError, KeyError, TypeError):
        return {}
