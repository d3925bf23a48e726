"""outputs/ is a directory on the host's disk, with no quota: RLIMIT_FSIZE caps each file, not
their number, so a child writing many files just under the cap could fill the disk the state
directory, MLflow and the audit chain live on. The launcher measures the disk outputs/ takes while
the child runs and after it ends, and kills a child past the file-size limit in all. Real bwrap
children."""

from __future__ import annotations

import anyio
import pytest

from server.ray_executor import RayExecutor
from server.sandbox import SandboxLauncher
from server.sandbox_io import outputs_over_budget
from server.settings import RayExecutorSettings
from tests.server.conftest import ray_cluster  # noqa: F401 - fixture: a local Ray head for this module
from tests.server.test_sandbox import LIMITS, bwrap, probe  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.training.rundirs import write_run_dir

pytestmark = pytest.mark.anyio
CAP = 8 * 2**20
# Files of half the cap each: every one is within RLIMIT_FSIZE, together they are five caps.
FILL = f"for i in range(10):\n    with open(f'/sandbox/built/fill{{i}}.bin', 'wb') as handle:\n        handle.write(os.urandom({CAP // 2}))"


async def test_a_child_filling_outputs_past_the_file_size_limit_in_all_is_stopped(bwrap, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(FILL))
    with anyio.fail_after(120):
        result = await SandboxLauncher(LIMITS.model_copy(update={"file_size_bytes": CAP})).run(run_dir)
    assert result.reason == "file_size_limit" and "writable directory in all" in result.detail


async def test_a_child_filling_outputs_on_a_ray_worker_is_stopped_the_same_way(bwrap, ray_cluster, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    executor = RayExecutor(RayExecutorSettings(address=ray_cluster, scratch_dir=scratch), LIMITS.model_copy(update={"file_size_bytes": CAP}))
    with anyio.fail_after(120):
        result = await executor.run(write_run_dir(tmp_path / "run", features_source=probe(FILL)))
    assert result.reason == "file_size_limit" and "writable directory in all" in result.detail
    with anyio.fail_after(30):  # the worker removes its run directory after its last message
        while list(scratch.iterdir()):
            await anyio.sleep(0.1)


async def test_a_child_still_writing_is_stopped_while_it_runs(bwrap, tmp_path):
    endless = "for i in range(2000):\n    open(f'/sandbox/built/f{i}', 'wb').write(os.urandom(2**20))\n    time.sleep(0.01)"
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(endless))
    with anyio.fail_after(120):
        result = await SandboxLauncher(LIMITS.model_copy(update={"file_size_bytes": CAP})).run(run_dir)
    assert result.reason == "file_size_limit" and result.duration_s < 15  # 2 GiB over some 25 s unstopped
    assert sum(f.stat().st_size for f in (run_dir / "built").iterdir()) < 256 * 2**20  # of 2 GiB


async def test_a_child_keeping_its_outputs_within_the_limit_is_not_stopped(bwrap, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(FILL.replace("range(10)", "range(1)")))
    result = await SandboxLauncher(LIMITS.model_copy(update={"file_size_bytes": CAP})).run(run_dir)
    assert result.reason == "ok"


def test_sparse_files_count_by_the_disk_they_take(tmp_path):
    with (tmp_path / "sparse.bin").open("wb") as handle:
        handle.truncate(64 * CAP)  # no disk taken: nothing a copy reads counts here (the model copy has its own cap)
    (tmp_path / "data.bin").write_bytes(b"x" * (CAP // 2))
    assert not outputs_over_budget(tmp_path, CAP)
    (tmp_path / "more.bin").write_bytes(b"x" * CAP)
    assert outputs_over_budget(tmp_path, CAP)
