"""The sandbox launcher: runs the untrusted training child (`python -m training`) under bubblewrap.

The child sees read-only system directories, the interpreter, the virtualenv and the training
package, its run's inputs/ read-only and outputs/ writable, a private /tmp, and nothing else: no
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

import functools
import importlib.util
import json
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL
from typing import IO

import anyio
from anyio.abc import Process

from server.sandbox_io import OutputsGuard, ProgressTail, RunPaths, kill_group, kill_pids, prepare_run_dir, sandbox_processes
from server.sandbox_leftovers import forget_sandbox, record_namespace, record_sandbox
from server.sandbox_outcome import ChildExit, conclude
from server.sandbox_result import Mode, SandboxResult
from server.sandbox_seccomp import filter_program
from server.sandbox_vocabulary import ProgressGate, ProgressStep, plan_for, read_spec
from server.settings import SandboxLimits, Settings
from tools.errors import SandboxFailed
from training.contract import LIFELINE_VARIABLE, PROGRESS_FILE

SANDBOX_RUN_DIR = "/sandbox"
SANDBOX_TRAINING_ROOT = "/opt/mlgate"
NOBODY = 65534
# As root each child runs as a uid of its own from this range (no account needs to exist): RLIMIT_NPROC
# counts a uid's processes host-wide, so children sharing nobody could starve each other.
RUN_UIDS = range(1_800_000_000, 1_900_000_000)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
GPU_PASSTHROUGH = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
REQUIRED_INPUTS = ("spec.json", "train.parquet", "eval.parquet", "features.py")  # the fit_predict task's
SCORE_INPUTS = ("spec.json", "eval.parquet", "features.py")  # and the trained model's files, model/NAME
MODEL_INPUT = re.compile(r"^model/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
PROGRESS_POLL_S = 0.1
KILL_DEADLINE_S = 10.0
RUN_TOKEN_VARIABLE = "SANDBOX_RUN_TOKEN"
ProgressCallback = Callable[[ProgressStep], Awaitable[None]]


@dataclass(frozen=True)
class HostLayout:
    """The host facts the child's command line depends on, gathered by discover_layout()."""

    bwrap: str | None
    python: str
    interpreter_prefix: str
    venv: str | None
    training_dir: str
    system_dirs: tuple[str, ...] = ()
    system_links: tuple[tuple[str, str], ...] = ()
    etc_files: tuple[str, ...] = ()
    gpu_devices: tuple[str, ...] = ()
    drop_privileges: bool = False
    sized_tmpfs: bool = False  # bwrap takes --size (0.8+): the child's /tmp is capped, else only by the host
    run_uids: bool = False  # RUN_UIDS exist in this user namespace (not in most rootless containers): else nobody
    prlimit: str = "/usr/bin/prlimit"
    setpriv: str = "/usr/bin/setpriv"


def discover_layout() -> HostLayout:
    links = tuple((d, os.readlink(d)) for d in SYSTEM_DIRS if os.path.islink(d))
    dirs = tuple(d for d in SYSTEM_DIRS if os.path.isdir(d) and not os.path.islink(d))
    gpus = sorted(str(p) for pattern in ("nvidia*", "nvidia-caps/*") for p in Path("/dev").glob(pattern))
    training = importlib.util.find_spec("training")
    return HostLayout(
        bwrap=shutil.which("bwrap"), python=sys.executable, interpreter_prefix=sys.base_prefix,
        venv=sys.prefix if sys.prefix != sys.base_prefix else None,
        training_dir=str(Path(next(iter(training.submodule_search_locations))).resolve()),
        system_dirs=dirs, system_links=links, etc_files=tuple(f for f in ETC_FILES if os.path.exists(f)),
        gpu_devices=tuple(p for p in gpus if not os.path.isdir(p)), drop_privileges=os.geteuid() == 0,
        sized_tmpfs=_takes_tmpfs_size(shutil.which("bwrap")), run_uids=_maps_run_uids(Path("/proc/self/uid_map")),
        prlimit=shutil.which("prlimit") or "/usr/bin/prlimit", setpriv=shutil.which("setpriv") or "/usr/bin/setpriv",
    )


@functools.cache
def _takes_tmpfs_size(bwrap: str | None) -> bool:
    """Whether this bwrap sizes a tmpfs (--size, bubblewrap 0.8): older ones refuse the option."""
    if bwrap is None:
        return False
    try:
        shown = subprocess.run([bwrap, "--help"], capture_output=True, timeout=10, check=False, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--size" in shown.stdout + shown.stderr


def _maps_run_uids(uid_map: Path) -> bool:
    """Whether one line of the uid map covers all of RUN_UIDS (lines: inside outside count)."""
    try:
        lines = [tuple(map(int, line.split())) for line in uid_map.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return False
    return any(len(line) == 3 and line[0] <= RUN_UIDS.start and RUN_UIDS.stop <= line[0] + line[2] for line in lines)


def required_inputs(inputs: Path) -> tuple[str, ...]:
    """The inputs a child gets: for the score task (training/scoring.py) the trained model's files
    (model/NAME) in place of training rows, for any other spec the fit_predict task's four."""
    spec = read_spec(inputs / "spec.json")
    if spec is None or spec.task != "score":
        return REQUIRED_INPUTS
    model = inputs / "model"
    names = sorted(f"model/{p.name}" for p in model.iterdir() if p.is_file() and not p.is_symlink()) if model.is_dir() else []
    return (*SCORE_INPUTS, *(name for name in names if MODEL_INPUT.match(name)))


def child_environment(limits: SandboxLimits, python_path: str, home: str, host_env: Mapping[str, str]) -> dict[str, str]:
    """The child's whole environment: an allowlist, never a copy of the server's."""
    env = {
        "PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "USER": "nobody",
        "LOGNAME": "nobody", "PYTHONPATH": python_path, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        # Idle OpenMP threads sleep instead of spinning: children side by side on few cores
        # otherwise starve each other (seen: a 0.3 s fit taking 27 s).
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    env.update({name: str(limits.threads) for name in THREAD_VARIABLES})
    env.update({name: host_env[name] for name in GPU_PASSTHROUGH if name in host_env})
    return env


def rlimit_argv(layout: HostLayout, limits: SandboxLimits) -> list[str]:
    """prlimit sets the limits on itself and execs the rest; CPU soft < hard so SIGXCPU names the cause."""
    address_space = limits.gpu_address_space_bytes if layout.gpu_devices else limits.address_space_bytes
    return [
        layout.prlimit, f"--as={address_space or 'unlimited'}", f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 5}",
        f"--fsize={limits.file_size_bytes}", f"--nproc={limits.nproc}", "--core=0", "--",
    ]


def training_argv(layout: HostLayout, run_dir: str) -> list[str]:
    return [layout.python, "-s", "-B", "-m", "training", "--run-dir", run_dir]


def _mount_parents(paths: list[str], existing: set[str]) -> list[str]:
    """--dir for every missing ancestor of the bind targets, world-traversable (the child is uid 65534)."""
    argv: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if str(parent) not in existing:
                argv += ["--perms", "0755", "--dir", str(parent)]
                existing.add(str(parent))
    return argv


def _is_under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(f"{root}/") for root in roots)


def _runtime_binds(layout: HostLayout) -> list[str]:
    """The interpreter and the venv at their host paths (absolute symlinks and .pth files stay valid)."""
    runtime = [p for p in (layout.interpreter_prefix, layout.venv) if p and not _is_under(p, layout.system_dirs)]
    existing = {"/", "/tmp", "/root", "/home", *layout.system_dirs}
    training_target = f"{SANDBOX_TRAINING_ROOT}/training"
    argv = _mount_parents([*runtime, training_target], existing)
    for path in runtime:
        argv += ["--ro-bind", path, path]
    return argv + ["--ro-bind", layout.training_dir, training_target]


def _namespace_args(info_fd: int | None, seccomp_fd: int | None) -> list[str]:
    argv = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox",
            "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--info-fd", str(info_fd)] if info_fd is not None else []
    return argv + (["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else [])


def _system_mounts(layout: HostLayout, limits: SandboxLimits) -> list[str]:
    """Read-only system dirs, minimal /etc, fresh /proc and /dev, GPUs (+ /sys), private /tmp, /root, /home.
    tmpfs pages are host memory outside RLIMIT_AS: /tmp holds at most one file of the size cap."""
    argv: list[str] = []
    for path in (*layout.system_dirs, *layout.etc_files):
        argv += ["--ro-bind", path, path]
    for path, target in layout.system_links:
        argv += ["--symlink", target, path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for device in layout.gpu_devices:
        argv += ["--dev-bind", device, device]
    # cuInit fails with CUDA_ERROR_OPERATING_SYSTEM without sysfs (driver module and PCI topology).
    argv += ["--ro-bind", "/sys", "/sys"] if layout.gpu_devices else []
    argv += ["--perms", "1777", *(["--size", str(limits.file_size_bytes)] if layout.sized_tmpfs else []), "--tmpfs", "/tmp"]
    for private in ("/root", "/home"):
        argv += ["--perms", "0755", "--tmpfs", private]
    return argv


def _sealed_mounts() -> list[str]:
    """The sandbox's own tmpfs mounts read-only once built: a child owning them (bwrap in a user
    namespace, the server not root) could otherwise fill host memory through /, /dev or /home."""
    return [arg for path in ("/", "/dev", "/root", "/home") for arg in ("--remount-ro", path)]


def _run_mounts(run_dir: Path) -> list[str]:
    return ["--perms", "0755", "--dir", SANDBOX_RUN_DIR,
            "--ro-bind", str(run_dir / "inputs"), f"{SANDBOX_RUN_DIR}/inputs",
            "--bind", str(run_dir / "outputs"), f"{SANDBOX_RUN_DIR}/outputs", "--chdir", SANDBOX_RUN_DIR]


def _drop_privileges(layout: HostLayout, uid: int) -> list[str]:
    """As root, bwrap keeps capabilities and RLIMIT_NPROC does not apply: run the child as `uid`."""
    if not layout.drop_privileges:
        return []
    return [layout.setpriv, "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def build_bwrap_argv(
    layout: HostLayout, run_dir: Path, limits: SandboxLimits, env: Mapping[str, str], info_fd: int | None = None,
    uid: int = NOBODY, seccomp_fd: int | None = None,
) -> list[str]:
    """The complete bwrap command line for one run. Pure: everything it depends on is an argument;
    `uid` is the child's when the layout drops privileges; `seccomp_fd` holds the filter
    (server/sandbox_seccomp.py)."""
    argv = [layout.bwrap or "bwrap", *_namespace_args(info_fd, seccomp_fd), *_system_mounts(layout, limits)]
    argv += [*_runtime_binds(layout), *_run_mounts(run_dir), *_sealed_mounts()]
    for name, value in sorted(env.items()):
        argv += ["--setenv", name, value]
    argv += ["--", *rlimit_argv(layout, limits), *_drop_privileges(layout, uid)]
    return argv + training_argv(layout, SANDBOX_RUN_DIR)


def build_unconfined_argv(layout: HostLayout, run_dir: Path, limits: SandboxLimits) -> list[str]:
    return rlimit_argv(layout, limits) + training_argv(layout, str(run_dir))


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
        """Run `python -m training` on run_dir; raises SandboxFailed when the sandbox is unavailable,
        the run directory is malformed, or the child's processes cannot all be killed. A failed
        run is a SandboxResult with ok=False, not an exception. Cancellation kills the child.
        on_progress gets server-worded steps bounded by inputs/spec.json, never the child's text."""
        mode = self._require_mode()
        uid = secrets.choice(RUN_UIDS) if self.layout.run_uids else NOBODY  # used only where the layout drops privileges
        paths = prepare_run_dir(run_dir, required_inputs(Path(run_dir) / "inputs"), mode == "bwrap" and self.layout.drop_privileges, uid)
        timeout = min(timeout_s or math.inf, self.limits.wall_clock_seconds)
        started = time.monotonic()
        spec = read_spec(paths.inputs / "spec.json")
        tail = ProgressTail(paths.outputs / PROGRESS_FILE, ProgressGate(plan_for(spec)))
        guard = OutputsGuard(paths.outputs, self.limits.file_size_bytes)
        with (paths.logs / "child.stdout").open("wb") as out, (paths.logs / "child.stderr").open("wb") as err:
            child = await self._spawn(mode, paths, out, err, uid)
            try:
                record_sandbox(paths.logs, child.group, child.environ_token)  # before waiting on it: a launcher killed now leaves it
                with anyio.move_on_after(timeout) as deadline:
                    await _identify(child)
                    record_namespace(paths.logs, child.sandbox_init, child.pid_namespace)
                    await self._stream(child, tail, on_progress, guard)
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        orphans = await self._kill_all(child)
                        forget_sandbox(paths.logs)
                    finally:  # also when processes survived (sandbox.orphans): no descriptor left open
                        tail.close()
                        os.close(child.lifeline)
        overflow = guard.tripped or await anyio.to_thread.run_sync(guard.measure)  # what it wrote since the last check
        ended = ChildExit(child.process.returncode, deadline.cancelled_caught, timeout, time.monotonic() - started,
                          tail.delivered, tail.rejected, orphans, child.group, child.pid_namespace, outputs_overflow=overflow)
        return conclude(mode, paths, ended, spec)

    def _require_mode(self) -> Mode:
        if self.mode == "unavailable":
            raise SandboxFailed(
                "bubblewrap (bwrap) is not installed, so training cannot be sandboxed",
                "Install bubblewrap (apt-get install bubblewrap), or have an operator set sandbox_mode: "
                "unconfined in the server config (weaker isolation, audited on every run).",
                rule_id="sandbox.unavailable",
            )
        return self.mode

    async def _spawn(self, mode: Mode, paths: RunPaths, out: IO[bytes], err: IO[bytes], uid: int) -> _Child:
        """The child, holding the read end of its lifeline; its one writer stays here (not inherited)."""
        lifeline_read, lifeline_write = os.pipe()
        try:
            child = await self._start(mode, paths, out, err, uid, lifeline_read)
        except BaseException:
            os.close(lifeline_write)
            raise
        finally:
            os.close(lifeline_read)
        child.lifeline = lifeline_write
        return child

    async def _start(self, mode: Mode, paths: RunPaths, out: IO[bytes], err: IO[bytes], uid: int, lifeline: int) -> _Child:
        if mode == "unconfined":
            paths.scratch.mkdir(exist_ok=True)
            env = child_environment(self.limits, str(Path(self.layout.training_dir).parent), str(paths.scratch), os.environ)
            env[RUN_TOKEN_VARIABLE], env[LIFELINE_VARIABLE] = secrets.token_hex(16), str(lifeline)
            argv = build_unconfined_argv(self.layout, paths.run_dir, self.limits)
            process = await anyio.open_process(argv, stdin=DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True, pass_fds=(lifeline,))
            return _Child(process, process.pid, environ_token=f"{RUN_TOKEN_VARIABLE}={env[RUN_TOKEN_VARIABLE]}".encode())
        env = {**child_environment(self.limits, SANDBOX_TRAINING_ROOT, "/tmp", os.environ), LIFELINE_VARIABLE: str(lifeline)}
        info_read, info_write = os.pipe()
        seccomp = _filter_fd()
        try:
            argv = build_bwrap_argv(self.layout, paths.run_dir, self.limits, env, info_fd=info_write, uid=uid, seccomp_fd=seccomp)
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

    async def _stream(self, child: _Child, tail: ProgressTail, on_progress: ProgressCallback | None, guard: OutputsGuard) -> None:
        """Hand new progress lines to on_progress until the child exits, then the last ones; returns
        early (the caller kills the child) once its outputs/ takes more disk than the guard allows."""
        while True:
            with anyio.move_on_after(PROGRESS_POLL_S):
                await child.process.wait()
            for event in tail.read_new():
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
