"""Run directories: a run that ended keeps no copy of the dataset rows its stages were given."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from server.rundirs import RunDirs

RUN = "a" * 32


def given(rundirs: RunDirs, stage: str) -> Path:
    directory = rundirs.stage_dir(RUN, stage)
    frame = pd.DataFrame({"x": range(100)})
    rundirs.write_inputs(directory, frame, frame, {"task": "fit_predict"}, b"def build_features(frame):\n    return frame\n")
    (directory / "logs").mkdir()
    (directory / "logs" / "child_report.json").write_text("{}")
    return directory


def test_releasing_a_run_deletes_the_row_copies_of_every_stage_and_keeps_the_rest(tmp_path: Path) -> None:
    rundirs = RunDirs(tmp_path / "runs")
    stages = [given(rundirs, "fold-0"), given(rundirs, "final")]
    expected = sum((s / "inputs" / n).stat().st_size for s in stages for n in ("train.parquet", "eval.parquet"))
    assert rundirs.release_inputs(RUN) == expected > 0
    for stage in stages:
        assert sorted(p.name for p in (stage / "inputs").iterdir()) == ["features.py", "spec.json"]
        assert (stage / "logs" / "child_report.json").is_file()
    assert rundirs.release_inputs(RUN) == 0  # a second release finds nothing


def test_releasing_never_follows_a_link_planted_in_a_stage(tmp_path: Path) -> None:
    rundirs = RunDirs(tmp_path / "runs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "train.parquet").write_bytes(b"not the run's")
    stage = given(rundirs, "final")
    os.rename(stage / "inputs", stage / "inputs.real")
    (stage / "inputs").symlink_to(outside)  # a directory link: its files are not the run's
    linked = given(rundirs, "fold-0")
    (linked / "inputs" / "eval.parquet").unlink()
    (linked / "inputs" / "eval.parquet").symlink_to(outside / "train.parquet")  # a file link: the link goes, its target stays
    rundirs.release_inputs(RUN)
    assert (outside / "train.parquet").read_bytes() == b"not the run's"
    assert not (linked / "inputs" / "eval.parquet").is_symlink() and not (linked / "inputs" / "train.parquet").exists()


def scored(rundirs: RunDirs) -> Path:
    directory = rundirs.stage_dir(RUN, "champion")
    frame = pd.DataFrame({"x": range(100)})
    rundirs.write_score_inputs(directory, frame, {"task": "score"}, b"", {"model.json": b"{}" * 500, "feature_transform.json": b"{}"})
    return directory


def test_releasing_deletes_a_score_stage_s_copy_of_the_champion_s_model(tmp_path: Path) -> None:
    rundirs = RunDirs(tmp_path / "runs")
    stage = scored(rundirs)
    expected = (stage / "inputs" / "eval.parquet").stat().st_size + 1002
    assert rundirs.release_inputs(RUN) == expected
    assert sorted(p.name for p in (stage / "inputs").iterdir()) == ["features.py", "spec.json"]


def test_releasing_a_model_copy_never_follows_a_link_in_it(tmp_path: Path) -> None:
    rundirs = RunDirs(tmp_path / "runs")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.json").write_bytes(b"not the run's")
    stage = scored(rundirs)
    (stage / "inputs" / "model" / "linked.json").symlink_to(outside / "model.json")
    (stage / "inputs" / "model" / "sub").mkdir()  # a directory is left, and with it model/
    rundirs.release_inputs(RUN)
    assert (outside / "model.json").read_bytes() == b"not the run's"
    assert sorted(p.name for p in (stage / "inputs" / "model").iterdir()) == ["sub"]
    os.rename(stage / "inputs", stage / "inputs.real")
    (stage / "inputs").mkdir()
    (stage / "inputs" / "model").symlink_to(outside)  # a link in place of model/: not followed
    rundirs.release_inputs(RUN)
    assert (outside / "model.json").is_file()


def test_a_malformed_run_id_releases_nothing(tmp_path: Path) -> None:
    rundirs = RunDirs(tmp_path / "runs")
    given(rundirs, "final")
    assert rundirs.release_inputs("../" + RUN) == 0 and (tmp_path / "runs" / RUN / "final" / "inputs" / "train.parquet").is_file()
