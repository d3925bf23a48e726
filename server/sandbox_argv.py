"""The sandbox's command lines: the host facts a launch depends on (HostLayout) and the bwrap argv
of one stage of one run, built by pure functions so every mount, flag and limit is tested as a table.
Run-directory layout and stages: training/__init__.py; the launcher: server/sandbox.py.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from server.settings import SandboxLimits
from training.contract import BUILT_DIR, Stage

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


def training_argv(layout: HostLayout, run_dir: str, stage: Stage) -> list[str]:
    return [layout.python, "-s", "-B", "-m", "training", "--run-dir", run_dir, "--stage", stage]


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


def _run_mounts(run_dir: Path, stage: Stage) -> list[str]:
    """inputs/ read-only; the features stage writes built/ and sees no outputs/, the fit stage reads
    built/ and writes outputs/."""
    built, inside = str(run_dir / BUILT_DIR), f"{SANDBOX_RUN_DIR}/{BUILT_DIR}"
    argv = ["--perms", "0755", "--dir", SANDBOX_RUN_DIR, "--ro-bind", str(run_dir / "inputs"), f"{SANDBOX_RUN_DIR}/inputs"]
    if stage == "features":
        return [*argv, "--bind", built, inside, "--chdir", SANDBOX_RUN_DIR]
    return [*argv, "--ro-bind", built, inside, "--bind", str(run_dir / "outputs"), f"{SANDBOX_RUN_DIR}/outputs", "--chdir", SANDBOX_RUN_DIR]


def _drop_privileges(layout: HostLayout, uid: int) -> list[str]:
    """As root, bwrap keeps capabilities and RLIMIT_NPROC does not apply: run the child as `uid`."""
    if not layout.drop_privileges:
        return []
    return [layout.setpriv, "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _stage_layout(layout: HostLayout, stage: Stage) -> HostLayout:
    """features.py needs no GPU: its stage gets no device nodes, no /sys and the CPU address-space cap,
    which narrows what project code can touch on a GPU host."""
    return replace(layout, gpu_devices=()) if stage == "features" else layout


def build_bwrap_argv(
    layout: HostLayout, run_dir: Path, limits: SandboxLimits, env: Mapping[str, str], info_fd: int | None = None,
    uid: int = NOBODY, seccomp_fd: int | None = None, stage: Stage = "fit",
) -> list[str]:
    """The complete bwrap command line for one stage of one run. Pure: everything it depends on is an
    argument; `uid` is the child's when the layout drops privileges; `seccomp_fd` holds the filter
    (server/sandbox_seccomp.py)."""
    layout = _stage_layout(layout, stage)
    argv = [layout.bwrap or "bwrap", *_namespace_args(info_fd, seccomp_fd), *_system_mounts(layout, limits)]
    argv += [*_runtime_binds(layout), *_run_mounts(run_dir, stage), *_sealed_mounts()]
    for name, value in sorted(env.items()):
        argv += ["--setenv", name, value]
    argv += ["--", *rlimit_argv(layout, limits), *_drop_privileges(layout, uid)]
    return argv + training_argv(layout, SANDBOX_RUN_DIR, stage)


def build_unconfined_argv(layout: HostLayout, run_dir: Path, limits: SandboxLimits, stage: Stage = "fit") -> list[str]:
    return rlimit_argv(layout, limits) + training_argv(layout, str(run_dir), stage)
