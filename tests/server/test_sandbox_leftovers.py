"""A launcher (a detached worker, the server) killed outright as bwrap starts leaves bwrap's inner
process behind: cloned, never let go on by the outer bwrap that died with the launcher, it waits on
its eventfd for good as init of its pid namespace (SIGTERM does not reach it). Reconciling the dead
launcher's run kills it, and says so; a starting server kills it in a run already ended too. Real bwrap; the race is made certain by a launcher whose reader
of bwrap's --info-fd has fallen behind (the pipe is full: bwrap stalls after cloning its sandbox, before
letting it go on) and that dies right after spawning bwrap. Once the sandbox runs, it dies with its
launcher, even while the child holds the GIL (its lifeline thread cannot run then)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from server.liveness import ProcessIdentity
from server.ports import Ports
from server.recovery import recover
from server.sandbox import SandboxLauncher, discover_layout
from server.sandbox_io import sandbox_processes
from server.sandbox_leftovers import RECORD, kill_recorded, kill_run_leftovers
from server.settings import SandboxLimits
from tests.e2e.transports import REPO_ROOT
from tests.server.test_sandbox import bwrap, probe  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.server.test_detached_runs import _owner_file
from tests.server.test_tracking import dead_process_identity
from tests.tools.detached_lab import processes_naming
from tests.training.rundirs import write_run_dir

pytestmark = pytest.mark.anyio
WAIT_S = 60.0

LAUNCH = """
import sys
from pathlib import Path
import anyio
import server.sandbox as sandbox
from server.settings import SandboxLimits
{fault}
anyio.run(sandbox.SandboxLauncher(SandboxLimits(wall_clock_seconds=600, threads=1)).run, Path(sys.argv[1]))
"""
STALLED = LAUNCH.format(fault='''
import fcntl, os, signal
build = sandbox.build_bwrap_argv

def full_info_pipe(*args, info_fd, **kwargs):
    fcntl.fcntl(info_fd, fcntl.F_SETPIPE_SZ, 4096)
    os.write(info_fd, b" " * 4096)
    return build(*args, info_fd=info_fd, **kwargs)

async def die(child):
    os.kill(os.getpid(), signal.SIGKILL)

sandbox.build_bwrap_argv, sandbox._identify = full_info_pipe, die
''')
PICKLED = "import pickle, sys, anyio\nanyio.run(pickle.loads(bytes.fromhex(sys.argv[1])).run, sys.argv[2])"
HOLDS_GIL = probe("open('/sandbox/built/started', 'w').close()\nimport ctypes\nctypes.PyDLL(None).sleep(600)")


def stage_dir(root: Path, run_id: str, features: str | None = None) -> Path:
    return write_run_dir(root / run_id / "fit", **({"features_source": features} if features else {}))


async def stranded_sandbox(run_dir: Path) -> tuple[ProcessIdentity, list[int]]:
    """Run the stalled launcher on run_dir until it kills itself; (its identity, what its sandbox left)
    once bwrap itself is gone."""
    launcher = subprocess.Popen([sys.executable, "-c", STALLED, str(run_dir)], cwd=REPO_ROOT)
    identity = ProcessIdentity.of(launcher.pid)
    assert await anyio.to_thread.run_sync(lambda: launcher.wait(timeout=WAIT_S)) == -signal.SIGKILL
    group = json.loads((run_dir / "logs" / RECORD).read_text())["group"]
    with anyio.fail_after(WAIT_S):
        while _alive(group):
            await anyio.sleep(0.05)
    return identity, processes_naming(str(run_dir))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


async def test_a_launcher_killed_as_bwrap_starts_leaves_a_process_that_reconciliation_kills(bwrap, tmp_path):
    run_id = secrets.token_hex(16)
    run_dir = stage_dir(tmp_path, run_id)
    _, left = await stranded_sandbox(run_dir)
    assert len(left) == 1  # bwrap's inner process, parent 1, waiting for the outer one
    assert Path(f"/proc/{left[0]}/stat").read_text().rsplit(")", 1)[1].split()[1] == "1"
    assert kill_run_leftovers(tmp_path, run_id) == 1
    assert processes_naming(str(run_dir)) == [] and not (run_dir / "logs" / RECORD).exists()
    assert kill_run_leftovers(tmp_path, run_id) == 0


async def test_a_dead_servers_run_is_reconciled_failed_and_what_its_sandbox_left_killed(bwrap, ports: Ports):
    experiment = ports.tracking.get_or_create_experiment("demo-bank/credit-default")  # the project's: recovery looks nowhere else
    run_id = ports.tracking.start_run(experiment, {})
    run_dir = stage_dir(ports.rundirs.root, run_id)
    launcher, left = await stranded_sandbox(run_dir)
    assert left
    ports.tracking.set_tags(run_id, launcher.tags())  # the server that launched it is the dead one
    assert recover(ports)["runs"] == [run_id]
    run = ports.tracking.get_run(run_id)
    assert run["status"] == "FAILED" and "killed 1 leftover sandbox process;" in run["tags"]["mlgate.end_reason"]
    assert processes_naming(str(run_dir)) == []


async def test_a_dead_detached_workers_run_is_reconciled_and_the_record_counts_what_it_killed(bwrap, ports: Ports):
    experiment = ports.tracking.get_or_create_experiment("leftovers")
    run_id, call_id = ports.tracking.start_run(experiment, {}), secrets.token_hex(16)
    run_dir = stage_dir(ports.rundirs.root, run_id)
    worker, left = await stranded_sandbox(run_dir)
    assert left
    _owner_file(ports, call_id, run_id, worker.tags())  # with the `accepted` record its launch chains
    assert ports.detached.reconcile() == [run_id]
    assert "killed 1 leftover sandbox process" in ports.tracking.get_run(run_id)["tags"]["mlgate.end_reason"]
    assert processes_naming(str(run_dir)) == []
    records = [json.loads(line) for line in ports.settings.audit_path.read_text().splitlines()]
    reconciled = [r for r in records if r.get("event") == "reconciled" and r.get("call_id") == call_id]
    assert [r["leftover_processes"] for r in reconciled] == [1]


async def test_a_launcher_killed_while_its_child_holds_the_gil_takes_its_whole_sandbox_with_it(bwrap, tmp_path):
    run_dir = stage_dir(tmp_path, secrets.token_hex(16), HOLDS_GIL)
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCH.format(fault=""), str(run_dir)], cwd=REPO_ROOT)
    with anyio.fail_after(WAIT_S):
        while not (run_dir / "built" / "started").exists():
            await anyio.sleep(0.05)
    record = json.loads((run_dir / "logs" / RECORD).read_text())
    assert sandbox_processes(record["group"], record["pid_namespace"])  # bwrap, its init, the child
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait(timeout=WAIT_S)
    with anyio.fail_after(WAIT_S):  # no reconciliation: bwrap's --die-with-parent ends it all
        while sandbox_processes(record["group"], record["pid_namespace"]):
            await anyio.sleep(0.05)


@pytest.mark.parametrize(("launcher", "group_started", "killed", "kept"), [
    ("dead", "right", 1, False),
    ("dead", "reused", 0, False),  # the recorded pid names a process started at another time: nothing is left
    ("alive", "right", 0, True),  # a live launcher kills its own sandbox
    ("rebooted", "right", 0, True),  # pids and start times of another boot mean nothing here
])
def test_a_record_kills_only_the_sandbox_of_a_dead_launcher_of_this_boot(tmp_path, launcher, group_started, killed, kept):
    sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)  # a process group of its own, as bwrap's
    try:
        tags = (dead_process_identity() if launcher != "alive" else ProcessIdentity.of(os.getpid())).tags()
        tags["mlgate.server.boot_id"] = "another-boot" if launcher == "rebooted" else tags["mlgate.server.boot_id"]
        ticks = int(ProcessIdentity.of(sleeper.pid).started) + (group_started == "reused")
        document = {"launcher": tags, "group": sleeper.pid, "group_started": ticks}
        (tmp_path / RECORD).write_text(json.dumps(document))
        assert kill_recorded(tmp_path / RECORD) == killed
        assert (tmp_path / RECORD).exists() == kept
        assert (sleeper.wait(timeout=WAIT_S) if killed else sleeper.poll()) == (-signal.SIGKILL if killed else None)
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_a_starting_server_kills_what_a_sandbox_left_in_a_run_ended_without_killing_it(bwrap, ports: Ports):
    experiment = ports.tracking.get_or_create_experiment("demo-bank/credit-default")
    run_id = ports.tracking.start_run(experiment, {})
    run_dir = stage_dir(ports.rundirs.root, run_id)
    launcher, left = await stranded_sandbox(run_dir)
    assert left
    ports.tracking.set_tags(run_id, launcher.tags())
    assert ports.tracking.reconcile_orphans() == [run_id]  # as run_experiment does: it kills nothing
    found = recover(ports)
    assert found["runs"] == [] and found["sandboxes"] == [{"run_id": run_id, "stage": "fit", "killed": 1}]
    assert processes_naming(str(run_dir)) == []
    recovered = [json.loads(line) for line in ports.settings.audit_path.read_text().splitlines() if '"recovered"' in line]
    assert recovered[-1]["sandboxes"] == found["sandboxes"]


async def test_an_unconfined_childs_setsid_descendant_outliving_its_launcher_is_killed_by_reconciliation(tmp_path):
    run_id = secrets.token_hex(16)
    outputs = tmp_path / run_id / "fit" / "built"  # where the features stage (features.py) may write
    escape = f"if os.fork() == 0:\n    os.setsid()\n    open({str(outputs / 'escaped')!r}, 'w').write(str(os.getpid()))\n    time.sleep(600)\n"
    run_dir = stage_dir(tmp_path, run_id, probe(escape + "time.sleep(600)"))
    layout = dataclasses.replace(discover_layout(), bwrap=None)
    launcher = SandboxLauncher(SandboxLimits(wall_clock_seconds=600, threads=1), allow_unconfined=True, layout=layout)
    process = subprocess.Popen([sys.executable, "-c", PICKLED, pickle.dumps(launcher).hex(), str(run_dir)], cwd=REPO_ROOT)
    with anyio.fail_after(WAIT_S):
        while not (outputs / "escaped").exists() or not (outputs / "escaped").read_text():
            await anyio.sleep(0.05)
    escaped = int((outputs / "escaped").read_text())
    record = json.loads((run_dir / "logs" / RECORD).read_text())
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=WAIT_S)
    with anyio.fail_after(WAIT_S):  # the child's lifeline ends it; its setsid descendant has none
        while sandbox_processes(record["group"], None, record["token"].encode()) != {escaped}:
            await anyio.sleep(0.05)
    assert kill_run_leftovers(tmp_path, run_id) == 1
    assert sandbox_processes(record["group"], None, record["token"].encode()) == set()
