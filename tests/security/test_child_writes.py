"""Where a training child can write inside the sandbox. Everything but outputs/ (built/ for the
features stage, the one running features.py) lives in tmpfs
mounts, whose pages are host memory that RLIMIT_AS does not count: a child owning them (bwrap in
a user namespace when the server is not root) could fill the host's memory through /, /dev, /root
or /home, and through /tmp as any user. Only /tmp is writable, capped at the file-size limit, and
the stage's directory. Real bwrap children."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from server.sandbox import SandboxLauncher, build_bwrap_argv, discover_layout
from server.settings import SandboxLimits
from tests.server.test_sandbox import BASE_LAYOUT, ENV, LIMITS, bwrap, probe  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.training.rundirs import write_run_dir

pytestmark = pytest.mark.anyio
SANDBOX_DIRS = ["/", "/dev", "/dev/shm", "/root", "/home", "/sandbox", "/sandbox/outputs"]


def _attempts(paths: list[str]) -> str:
    """Features that raise LookupError when any of `paths` can be created (named in the result)."""
    return "\n".join(f"try:\n    open({p!r}, 'w').write('x')\n    raise LookupError()\nexcept OSError:\n    pass" for p in paths)


def _owner_layout():
    """The layout of a server whose child owns the sandbox's tmpfs mounts: as root, one that keeps
    the child root (a non-root server's child is the server's uid in bwrap's user namespace)."""
    return dataclasses.replace(discover_layout(), drop_privileges=False)


def test_the_sandbox_tmpfs_mounts_are_remounted_read_only_after_they_are_built():
    argv = build_bwrap_argv(dataclasses.replace(BASE_LAYOUT, sized_tmpfs=True), Path("/runs/r1"), SandboxLimits(file_size_bytes=2**22), ENV)
    sealed = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--remount-ro"]
    assert sealed == ["/", "/dev", "/root", "/home"]
    assert argv.index("--remount-ro") > max(i for i, arg in enumerate(argv) if arg == "--dir")
    assert argv[argv.index("/tmp") - 3 : argv.index("/tmp")] == ["--size", str(2**22), "--tmpfs"]
    unsized = build_bwrap_argv(BASE_LAYOUT, Path("/runs/r1"), SandboxLimits(), ENV)
    assert "--size" not in unsized  # a bwrap older than 0.8 would refuse the option


async def test_a_child_owning_the_sandbox_root_writes_only_to_tmp_and_built(bwrap, tmp_path):
    writes = _attempts([f"{d.rstrip('/')}/probe" for d in SANDBOX_DIRS])
    writes += "\nopen('/tmp/probe', 'w').write('x')\nopen('/sandbox/built/probe', 'w').write('x')"
    launcher = SandboxLauncher(LIMITS, layout=_owner_layout())
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(writes)))
    assert result.reason == "ok", result.detail


async def test_tmp_holds_no_more_than_the_file_size_cap(bwrap, tmp_path):
    if not discover_layout().sized_tmpfs:
        pytest.skip("this bwrap cannot size a tmpfs (--size needs bubblewrap 0.8)")
    cap = 2 * 2**20  # three files of half the cap: the third must not fit
    fill = (f"try:\n    for i in range(3):\n        with open(f'/tmp/fill{{i}}', 'wb') as handle:\n"
            f"            handle.write(os.urandom({cap // 2}))\n    raise LookupError()\nexcept OSError:\n    pass")
    limits = LIMITS.model_copy(update={"file_size_bytes": cap})
    result = await SandboxLauncher(limits).run(write_run_dir(tmp_path / "run", features_source=probe(fill)))
    assert result.reason == "ok", result.detail

