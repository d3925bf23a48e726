"""Registered datasets travel with `mlgate backup` and come back with `mlgate restore`: a clone of
the workspace (data/shadow is git-ignored) is usable again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from server.backup_datasets import LISTING
from server.cli import main
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.settings import load_settings


@pytest.fixture
def with_dataset(workspace: Path, tmp_path: Path) -> tuple[Path, str]:
    return workspace, import_files(workspace, [write_credit_csv(tmp_path / "credit.csv", rows=200)]).added.content_hash


def backed_up(workspace: Path, dest: Path, *extra: str) -> Path:
    assert main(["backup", str(dest), "--workspace", str(workspace), *extra]) == 0
    (backup,) = dest.iterdir()
    return backup


def clone_of(workspace: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(workspace), str(where)], check=True)
    return where


def test_a_restored_clone_gets_the_registered_datasets_back(with_dataset: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace, content_hash = with_dataset
    backup = backed_up(workspace, tmp_path / "out")
    info = json.loads((backup / "backup.json").read_text())
    assert info["datasets"] == [content_hash] and info["created"] == backup.name and "and 1 datasets" in capsys.readouterr().out
    clone = clone_of(workspace, tmp_path / "clone")
    assert not (clone / "data/shadow" / content_hash).exists()
    assert main(["restore", str(backup), "--workspace", str(clone)]) == 0
    assert "1 of the backup's 1 datasets copied" in capsys.readouterr().out
    assert main(["data", "verify", content_hash, "--workspace", str(clone)]) == 0
    restore = json.loads(load_settings(clone).audit_path.read_bytes().splitlines()[-1])
    assert (restore["tool"], restore["datasets"]) == ("restore", [content_hash])


def test_a_damaged_dataset_in_the_backup_restores_nothing(with_dataset: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace, content_hash = with_dataset
    backup = backed_up(workspace, tmp_path / "out")
    data_file = next(p for p in (backup / "datasets" / content_hash).iterdir() if p.name != "manifest.tsv")
    data_file.write_bytes(data_file.read_bytes() + b"0,0\n")
    clone = clone_of(workspace, tmp_path / "clone")
    assert main(["restore", str(backup), "--workspace", str(clone)]) == 2
    assert "does not match DATASETS.tsv" in capsys.readouterr().err
    assert not load_settings(clone).state_dir.exists() and not (clone / "data/shadow" / content_hash).exists()


def test_without_datasets_the_backup_holds_the_state_alone(with_dataset: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace, content_hash = with_dataset
    backup = backed_up(workspace, tmp_path / "out", "--without-datasets")
    assert not (backup / LISTING).exists() and not (backup / "datasets").exists() and "datasets left out" in capsys.readouterr().out
    clone = clone_of(workspace, tmp_path / "clone")
    assert main(["restore", str(backup), "--workspace", str(clone)]) == 0
    assert "the backup holds no datasets" in capsys.readouterr().out and not (clone / "data/shadow" / content_hash).exists()


def test_a_dataset_the_workspace_still_has_is_left_as_it_is(with_dataset: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace, content_hash = with_dataset
    backup = backed_up(workspace, tmp_path / "out")
    clone = clone_of(workspace, tmp_path / "clone")
    (clone / "data/shadow").mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(workspace / "data/shadow" / content_hash), str(clone / "data/shadow" / content_hash)], check=True)
    assert main(["restore", str(backup), "--workspace", str(clone)]) == 0
    assert "0 of the backup's 1 datasets copied into data/shadow (the others were there)" in capsys.readouterr().out


def test_a_registered_dataset_gone_from_data_shadow_or_a_link_there_is_named_missing(tmp_path: Path) -> None:
    from server.backup_datasets import copy_datasets

    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    (workspace / "data/shadow").mkdir(parents=True)
    outside.mkdir()
    (outside / "rows.csv").write_text("a\n1\n")
    (workspace / "data/shadow" / ("b" * 64)).symlink_to(outside)  # not the workspace's: never followed
    copied, missing, size = copy_datasets(workspace, ["a" * 64, "b" * 64, "../x"], tmp_path / "staging")
    assert (copied, missing, size) == ([], ["a" * 64, "b" * 64], 0) and not (tmp_path / "staging").exists()
