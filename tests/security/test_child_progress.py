"""A training child that floods progress.jsonl: the server reads the file on its event loop, so what
it reads per poll and how many junk lines it parses must be bounded, whatever the child writes.
A real bwrap child and the server's own ProgressTail."""

from __future__ import annotations

import time

import anyio
import pytest

from server.sandbox import SandboxLauncher
from server.sandbox_io import MAX_REJECTED_PROGRESS_LINES, ProgressTail
from server.sandbox_vocabulary import ProgressGate, ProgressPlan
from tests.server.test_sandbox import LIMITS, bwrap, probe  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.training.rundirs import write_run_dir

TWO_EPOCHS = ProgressGate(ProgressPlan("torch_mlp", 2))
# 2 MiB of three-byte lines: some 700 000 lines that are not progress events.
JUNK = b"xx\n" * (700 * 1000)


def test_a_flood_of_junk_lines_is_parsed_only_up_to_the_rejection_bound(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_bytes(b'{"step": 1}\n' + JUNK + b'{"step": 2}\n')
    tail = ProgressTail(path, TWO_EPOCHS)
    started = time.monotonic()
    steps = tail.read_new() + tail.read_new()
    assert [step.step for step in steps] == [1]
    assert tail.rejected <= MAX_REJECTED_PROGRESS_LINES + 1 and tail.closed  # stops reading a hostile file
    assert tail.read_new() == [] and time.monotonic() - started < 1.0


def test_one_poll_reads_a_bounded_slice_of_a_huge_progress_file(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_bytes(b" " * (8 * 2**20))  # no newline: one 8 MiB line
    tail = ProgressTail(path, TWO_EPOCHS)
    tail.read_new()
    assert not tail.closed and 0 < tail.consumed_bytes <= 2**20


@pytest.mark.anyio
async def test_features_py_cannot_reach_the_progress_file_the_server_streams(bwrap, tmp_path):
    """progress.jsonl is written by the fit stage, a sandbox features.py never runs in; the bounds
    above stay as a second wall."""
    flood = "with open('/sandbox/outputs/progress.jsonl', 'ab') as handle:\n    handle.write(b'xx\\n' * 700000)"
    run_dir = write_run_dir(tmp_path / "run", features_source=probe(flood))
    with anyio.fail_after(60):
        result = await SandboxLauncher(LIMITS).run(run_dir)
    assert (result.reason, result.stage, result.result.error_type) == ("child_error", "features", "FileNotFoundError"), result.detail
    assert result.progress_rejected == 0 and not (run_dir / "outputs" / "progress.jsonl").exists()
