"""A training child outlives nothing: when the process that launched it dies at once (SIGKILL, an
OOM kill) the child stops too, however far its start had gone.

bubblewrap's --die-with-parent covers a sandbox whose start is complete, but not one whose launcher
died in the instant between fork and bwrap's own prctl (seen: a detached worker killed then left a
sleeping sandbox running for good), and an unconfined child has no such guard at all. The child
holds the read end of a pipe whose only writer is its launcher: end of file means the launcher is
gone, and the child exits.

Real launchers in a process of their own, killed with SIGKILL; a real bwrap sandbox and a real
unconfined child.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from server.sandbox import SandboxLauncher, discover_layout
from server.settings import PACKAGE_ROOT
from tests.server.test_sandbox import LIMITS, bwrap, probe, processes_with  # noqa: F401 - bwrap is a fixture
from tests.training.rundirs import write_run_dir

pytestmark = pytest.mark.anyio
WAIT_S = 60.0
LAUNCH = """
import pickle, sys, anyio
launcher = pickle.loads(bytes.fromhex(sys.argv[1]))
anyio.run(launcher.run, sys.argv[2])
"""


def launchers() -> dict[str, SandboxLauncher]:
    layout = discover_layout()
    return {"bwrap": SandboxLauncher(LIMITS, layout=layout), "unconfined": SandboxLauncher(LIMITS, allow_unconfined=True, layout=dataclasses.replace(layout, bwrap=None))}


async def _until(condition, what: str) -> None:
    with anyio.fail_after(WAIT_S):
        while not condition():
            await anyio.sleep(0.05)


@pytest.mark.parametrize("mode", ["bwrap", "unconfined"])
async def test_a_child_whose_launcher_is_killed_stops(bwrap, tmp_path: Path, mode: str) -> None:  # noqa: F811
    started = "/sandbox/built/started" if mode == "bwrap" else str(tmp_path / "run" / "built" / "started")
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(f"open({started!r}, 'w').close()\ntime.sleep(600)"))
    launcher = launchers()[mode]
    assert launcher.mode == mode
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, pickle.dumps(launcher).hex(), str(run_dir)], cwd=PACKAGE_ROOT, start_new_session=True)
    try:
        await _until(lambda: (run_dir / "built" / "started").exists() or process.poll() is not None, "the child to start")
        assert process.poll() is None, "the launcher ended before its child started"
        os.kill(process.pid, signal.SIGKILL)  # the launcher dies at once: no clean-up of its own runs
        process.wait(timeout=30)
        with anyio.move_on_after(WAIT_S):
            while processes_with(str(run_dir)):
                await anyio.sleep(0.1)
        left = processes_with(str(run_dir))
    finally:
        for pid in processes_with(str(run_dir)):
            os.kill(int(pid), signal.SIGKILL)
    assert left == [], f"the child outlived its launcher: pids {left}"
