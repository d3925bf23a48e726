"""The bytes a training child makes the server copy. A child can create sparse files: a thousand
files of a gigabyte each cost it no disk and no time, but the server's model copy (then logged to
MLflow) and a Ray worker's report (sent to the server) read and write every byte. Both are bounded
by the sizes the files declare, before anything is read. Real files, the server's own readers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server import ray_worker
from server.rundirs import MAX_MODEL_BYTES, RunDirs
from server.sandbox_result import SandboxResult
from tools.errors import SandboxFailed


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def test_a_model_of_sparse_files_past_the_artifact_cap_is_refused_before_anything_is_copied(tmp_path):
    stage = tmp_path / "stage"
    for name in ("model.pt", "architecture.json", "feature_transform.json"):
        _sparse(stage / "outputs" / "model" / name, MAX_MODEL_BYTES // 3 + 1)
    target = tmp_path / "copy"
    with pytest.raises(SandboxFailed) as caught:
        RunDirs(tmp_path).copy_model(stage, target, "torch_mlp")
    assert caught.value.rule_id == "sandbox.invalid_output" and "GiB" in caught.value.reason
    assert not target.exists() or list(target.rglob("*")) == []


def test_a_model_within_the_cap_is_copied_byte_for_byte(tmp_path):
    model = tmp_path / "stage" / "outputs" / "model"
    model.mkdir(parents=True)
    (model / "model.json").write_bytes(b'{"trees": []}')
    (model / "feature_transform.json").write_bytes(b"{}")
    copied = RunDirs(tmp_path).copy_model(tmp_path / "stage", tmp_path / "copy", "xgboost")
    assert (copied / "model.json").read_bytes() == b'{"trees": []}' and sorted(p.name for p in copied.iterdir()) == ["feature_transform.json", "model.json"]


LEAKY_NAME = "leak_income_40157.06_label_0.json"


@pytest.mark.parametrize("extra", [LEAKY_NAME, f"nested/{LEAKY_NAME}", None])
def test_a_model_directory_with_other_files_than_its_family_writes_is_refused_without_naming_them(tmp_path, extra):
    """src/features.py can write into outputs/model/ and name a file after a row: that name would
    reach MLflow, get_run and the audit chain. A missing file is refused the same way."""
    model = tmp_path / "stage" / "outputs" / "model"
    model.mkdir(parents=True)
    (model / "feature_transform.json").write_bytes(b"{}")
    if extra is None:
        (model / "model.pt").write_bytes(b"weights")  # architecture.json missing
    else:
        (model / "model.pt").write_bytes(b"weights")
        (model / "architecture.json").write_bytes(b"{}")
        (model / extra).parent.mkdir(parents=True, exist_ok=True)
        (model / extra).write_bytes(b"{}")
    with pytest.raises(SandboxFailed) as caught:
        RunDirs(tmp_path).copy_model(tmp_path / "stage", tmp_path / "copy", "torch_mlp")
    assert caught.value.rule_id == "sandbox.invalid_output" and "40157" not in str(caught.value.as_dict())
    assert not (tmp_path / "copy").exists()


def test_a_ray_worker_sends_no_more_output_bytes_than_the_file_size_cap(tmp_path):
    cap = 2**20
    outputs = tmp_path / "run" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "result.json").write_text("{}")
    for i in range(3):
        (outputs / f"pad{i}.bin").write_bytes(os.urandom(cap // 2))
    (tmp_path / "run" / "logs").mkdir()
    report = ray_worker._report(SandboxResult(ok=True, reason="ok", detail="", mode="bwrap", duration_s=1.0, exit_code=0),
                                tmp_path / "run", {"file_size_bytes": cap})
    assert sum(len(data) for data in report["files"].values()) <= cap
    assert "result.json" in report["files"] and len(report["unsafe"]) >= 1  # the rest fails the run, named unsafe
