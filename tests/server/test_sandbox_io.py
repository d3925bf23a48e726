"""server/sandbox_io.py: outputs of the untrusted child are read without following its links,
progress lines are streamed whole and validated, the run directory is checked before launch."""

from __future__ import annotations

import os
import subprocess

import pytest

from server.sandbox_io import ProgressTail, audit_outputs, prepare_run_dir, read_output_bytes, sandbox_processes
from server.sandbox_vocabulary import ProgressGate, ProgressPlan
from tools.errors import SandboxFailed

TWO_EPOCHS = ProgressGate(ProgressPlan("torch_mlp", 2))


def test_a_symlink_planted_as_an_output_is_never_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("token")
    (tmp_path / "result.json").symlink_to(secret)
    with pytest.raises(OSError):
        read_output_bytes(tmp_path / "result.json", 1024)


@pytest.mark.parametrize("kind", ["fifo", "hardlink", "oversize"])
def test_special_hard_linked_or_oversized_outputs_are_refused(tmp_path, kind):
    target = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(target)  # a blocking reader would hang the server
    elif kind == "hardlink":
        (tmp_path / "other").write_text("x")
        os.link(tmp_path / "other", target)
    else:
        target.write_bytes(b"x" * 11)
    with pytest.raises(OSError):
        read_output_bytes(target, 10)


def test_audit_outputs_lists_everything_but_plain_files_and_directories(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.json").write_text("{}")
    (tmp_path / "model" / "link").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "pipe")
    assert audit_outputs(tmp_path) == ["model/link", "pipe"]


def test_progress_tail_yields_complete_admitted_lines_only(tmp_path):
    path = tmp_path / "progress.jsonl"
    tail = ProgressTail(path, TWO_EPOCHS)
    assert tail.read_new() == []  # not written yet
    with path.open("a") as handle:
        handle.write('{"step": 1, "metrics": {"train_loss": 0.5}}\n{"step": 2,')
    assert [(event.step, event.message) for event in tail.read_new()] == [(1, "epoch 1/2")]
    with path.open("a") as handle:
        handle.write(' "metrics": {}}\n{"step": 3}\n{"step": 1, "message": "row 17: alice"}\n')
    assert [event.message for event in tail.read_new()] == ["epoch 2/2"]
    assert (tail.delivered, tail.rejected) == (2, 2)  # past the total; free text is not a progress field
    tail.close()


def test_progress_tail_refuses_a_symlinked_progress_file(tmp_path):
    (tmp_path / "secret").write_text('{"step": 1}\n')
    (tmp_path / "progress.jsonl").symlink_to(tmp_path / "secret")
    tail = ProgressTail(tmp_path / "progress.jsonl", TWO_EPOCHS)
    assert tail.read_new() == [] and tail.closed


def test_run_dir_needs_every_input_and_an_empty_outputs_dir(tmp_path):
    (tmp_path / "inputs").mkdir()
    with pytest.raises(SandboxFailed) as caught:
        prepare_run_dir(tmp_path, ("spec.json",), sandbox_owns_outputs=False)
    assert caught.value.rule_id == "sandbox.run_dir" and "spec.json" in caught.value.reason
    (tmp_path / "inputs" / "spec.json").write_text("{}")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "result.json").write_text("{}")  # stale: would be read as this run's result
    with pytest.raises(SandboxFailed, match="not empty"):
        prepare_run_dir(tmp_path, ("spec.json",), sandbox_owns_outputs=False)


def test_sandbox_processes_finds_the_group_and_ignores_reaped_processes():
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert sandbox_processes(child.pid, None) == {child.pid}
    finally:
        child.kill()
        child.wait()
    assert sandbox_processes(child.pid, None) == set()
