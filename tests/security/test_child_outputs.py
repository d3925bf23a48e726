"""A training child that shapes the tree it writes (built/, the features stage's directory) to break the code reading it: a chain of
directories deeper than Python's recursion limit (os.walk, pathlib and shutil.rmtree recurse on
3.11). The server's audit and the Ray worker's report and clean-up must still end the run as
unsafe output, and leave no directory behind on the worker. Real bwrap children; the Ray worker's
function is called as Ray would call it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from server import ray_worker
from server.sandbox import REQUIRED_INPUTS, SandboxLauncher
from server.sandbox_io import audit_outputs, remove_tree
from tests.server.test_sandbox import LIMITS, bwrap, probe  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.training.rundirs import write_run_dir

DEPTH = sys.getrecursionlimit() + 200
# Built with chdir so no path the child uses grows past PATH_MAX; then it trains and succeeds.
DEEP_CHAIN = f"os.chdir('/sandbox/built')\nfor _ in range({DEPTH}):\n    os.makedirs('d', exist_ok=True)\n    os.chdir('d')\nos.chdir('/sandbox')"


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path):
    """pytest's own clean-up of old temporary directories recurses: it must never meet a chain."""
    yield
    subprocess.run(["rm", "-rf", str(tmp_path)], check=False)


def _chain(root: Path, depth: int) -> None:
    """root/d/d/.../d, made relative to each level's directory so no path passes PATH_MAX."""
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


def test_a_directory_chain_past_the_recursion_limit_is_reported_unsafe_not_raised(tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "result.json").write_text("{}")
    _chain(outputs, DEPTH)
    unsafe = audit_outputs(outputs)
    assert len(unsafe) == 1 and unsafe[0].startswith("d/d/d/")  # named by its first too-deep level


def test_a_directory_chain_past_the_recursion_limit_is_removed(tmp_path):
    _chain(tmp_path, DEPTH)
    remove_tree(tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_a_child_leaving_a_too_deep_output_tree_fails_as_unsafe_output(bwrap, tmp_path):
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(DEEP_CHAIN))
    with anyio.fail_after(120):
        result = await SandboxLauncher(LIMITS).run(run_dir)
    assert result.reason == "unsafe_output" and "d/" not in result.detail and result.stage == "features"


def test_a_ray_worker_reports_a_too_deep_output_tree_as_unsafe_and_leaves_no_run_directory(bwrap, tmp_path):
    run_dir = write_run_dir(tmp_path / "source", features_source=probe(DEEP_CHAIN))
    inputs = {name: (run_dir / "inputs" / name).read_bytes() for name in REQUIRED_INPUTS}
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    answers = list(ray_worker.run_child(inputs, LIMITS.model_dump(mode="json"), "bwrap", 120.0, str(scratch), ray_worker.code_digest()))
    done = answers[-1]
    assert done["kind"] == "done" and done["stage"] == "features" and len(done["unsafe"]) == 1
    assert set(done["files"]) <= {"result.json"}  # the frames stay on the worker: only the report is judged
    assert list(scratch.iterdir()) == []
