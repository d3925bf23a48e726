"""RLIMIT_NPROC counts every process of a uid on the host. When the server runs as root every child
ran as nobody, so one run's features.py filling the process limit with sleeping forks kept every
other run (another agent's too) from starting at all. Each child now runs as a uid of its own.
Real bwrap children side by side; only meaningful where the server drops privileges (root)."""

from __future__ import annotations

import os

import anyio
import pytest

from server.sandbox import SandboxLauncher
from server.sandbox_argv import _maps_run_uids
from tests.server.test_sandbox import LIMITS, bwrap, probe  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.training.rundirs import write_run_dir

LIMITED = LIMITS.model_copy(update={"nproc": 64})
# Forks until the process limit refuses one, says so in a file, and keeps its processes alive.
HOARD = """
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        children += 1
except OSError:
    open('/sandbox/built/full', 'w').write(str(children))
time.sleep(600)
"""


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("a non-root server's children share its uid in bwrap's user namespace")


@pytest.mark.anyio
async def test_a_child_hoarding_the_process_limit_does_not_stop_another_run(bwrap, as_root, tmp_path):
    hoarder = write_run_dir(tmp_path / "hoarder", features_source=probe(HOARD))
    other = write_run_dir(tmp_path / "other")
    async with anyio.create_task_group() as group:
        group.start_soon(SandboxLauncher(LIMITED).run, hoarder)
        with anyio.fail_after(60):
            while not (hoarder / "built" / "full").exists():
                await anyio.sleep(0.1)
            result = await SandboxLauncher(LIMITED).run(other)
        group.cancel_scope.cancel()
    assert int((hoarder / "built" / "full").read_text()) > 32
    assert result.reason == "ok", result.detail


@pytest.mark.anyio
async def test_two_children_run_as_different_uids(bwrap, as_root, tmp_path):
    report = "open('/sandbox/built/uid', 'w').write(str(os.getuid()))"
    first, second = (write_run_dir(tmp_path / name, features_source=probe(report)) for name in ("a", "b"))
    results = [await SandboxLauncher(LIMITS).run(run) for run in (first, second)]
    assert [r.reason for r in results] == ["ok", "ok"]
    uids = {(run / "built" / "uid").read_text() for run in (first, second)}
    assert len(uids) == 2 and "0" not in uids


@pytest.mark.parametrize(("uid_map", "separate"), [
    ("         0          0 4294967295\n", True),  # the host's own namespace
    ("         0       1000          1\n         1     100000      65536\n", False),  # a rootless container
])
def test_children_get_uids_of_their_own_only_where_the_uid_map_has_them(tmp_path, uid_map, separate):
    (tmp_path / "uid_map").write_text(uid_map)
    assert _maps_run_uids(tmp_path / "uid_map") is separate
