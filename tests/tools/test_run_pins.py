"""Rebuilding a run's config from its MLflow params, the pins a re-run must share, and what makes a
run dirty."""

from __future__ import annotations

import subprocess
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from server.git import GitRepo
from server.tracking_values import as_text, flatten
from tools.provenance import config_hash, sha256_bytes
from tools.run_pins import CRLF_ONLY, OTHER_TRACKED, OVERRIDDEN, dirtiness, pin_mismatches, rebuild_config, unflatten

FEATURES = "src/features.py"

CONFIG: dict[str, Any] = {
    "experiment": {"name": "42", "seed": 7},
    "data": {"dataset": "a" * 64, "target": "default", "positive_class": 1},
    "split": {"strategy": "temporal_split", "test_size": 0.2, "validation_size": 0.2},
    "model": {"type": "logistic_regression", "params": {}},
    "features": {"exclude": [], "use_protected_attributes": False},
    "evaluation": {"primary_metric": "roc_auc", "metrics": ["roc_auc", "f1"], "bootstrap_samples": 20},
}


def logged(config: dict[str, Any]) -> dict[str, str]:
    """Params as run_experiment logs them: flattened, strings as they are, the rest as JSON."""
    return {**{k: as_text(v) for k, v in flatten({"config": config}).items()}, "config_hash": config_hash(config), "git_commit": "c" * 40}


def test_unflatten_inverts_the_logged_params() -> None:
    config = deepcopy(CONFIG)
    config["experiment"]["name"] = "baseline"
    assert unflatten(logged(config)) == config


def test_the_rebuilt_config_hashes_to_the_recorded_config_hash() -> None:
    config = deepcopy(CONFIG)
    config["experiment"]["name"] = "baseline"
    assert rebuild_config(logged(config)) == config


def test_a_string_that_looks_like_json_falls_back_to_the_committed_config() -> None:
    params = logged(CONFIG)
    assert unflatten(params)["experiment"]["name"] == 42
    assert rebuild_config(params) is None
    committed = yaml.safe_load(yaml.safe_dump(CONFIG))
    assert rebuild_config(params, committed) == CONFIG


def test_a_config_matching_neither_is_not_the_runs_config() -> None:
    params = {**logged(CONFIG), "config.split.test_size": "0.3"}
    assert rebuild_config(params, {"experiment": {"name": "other"}}) is None


def test_a_same_seed_rerun_must_share_every_pin() -> None:
    original = {**logged(CONFIG), "seed": "7", "dataset_content_hash": "d" * 64, "feature_pipeline_hash": "f" * 64}
    assert pin_mismatches(original, dict(original), same_seed=True) == []
    assert pin_mismatches(original, {**original, "dataset_content_hash": "e" * 64, "seed": "8"}, same_seed=True) == ["dataset_content_hash", "seed"]


def test_a_seed_rerun_may_change_the_seed_and_nothing_else() -> None:
    original = {**logged(CONFIG), "seed": "7", "dataset_content_hash": "d" * 64, "feature_pipeline_hash": "f" * 64}
    config = deepcopy(CONFIG)
    config["experiment"]["seed"] = 8
    rerun = {**original, **logged(config), "seed": "8"}
    assert pin_mismatches(original, rerun, same_seed=False) == []
    assert pin_mismatches(original, {**rerun, "config.model.type": "xgboost"}, same_seed=False) == ["config.model.type"]


def test_a_pin_the_original_never_recorded_never_matches() -> None:
    assert pin_mismatches({"git_commit": "c" * 40}, {"git_commit": "c" * 40}, same_seed=True) == ["dataset_content_hash", "feature_pipeline_hash", "seed", "config_hash"]


# --- dirtiness: which files make a run dirty, against a real git repository


def used_bytes(repo: GitRepo, *paths: str) -> dict[str, str]:
    """SHA-256 of the work tree files, as run_experiment hashes the bytes it uses."""
    return {path: sha256_bytes((repo.path / path).read_bytes()) for path in paths}


def test_a_run_from_a_clean_commit_is_clean(workspace: Path) -> None:
    repo = GitRepo(workspace)
    assert dirtiness(repo, repo.head(), used_bytes(repo, FEATURES), overridden=False) == {"git_dirty": False, "dirty_files": []}


def test_an_edited_file_the_run_uses_is_named(workspace: Path) -> None:
    repo = GitRepo(workspace)
    (workspace / FEATURES).write_text((workspace / FEATURES).read_text() + "\n# an edit\n")
    found = dirtiness(repo, repo.head(), used_bytes(repo, FEATURES), overridden=True)
    assert found == {"git_dirty": True, "dirty_files": [FEATURES, OVERRIDDEN]}


def test_another_tracked_file_changed_is_said_when_the_used_files_are_clean(workspace: Path) -> None:
    repo = GitRepo(workspace)
    (workspace / "AGENTS.md").write_text("edited\n")
    assert dirtiness(repo, repo.head(), used_bytes(repo, FEATURES), overridden=False) == {"git_dirty": True, "dirty_files": [OTHER_TRACKED]}


def test_a_crlf_checkout_that_git_status_calls_clean_is_dirty_and_says_line_endings(workspace: Path) -> None:
    repo = GitRepo(workspace)
    (workspace / ".gitattributes").write_text("*.py text eol=crlf\n")
    repo.commit_all("check Python files out with CRLF")
    (workspace / FEATURES).unlink()
    subprocess.run(["git", "checkout", "--", FEATURES], cwd=workspace, check=True)
    assert b"\r\n" in (workspace / FEATURES).read_bytes() and repo.text("status", "--porcelain") == ""
    found = dirtiness(repo, repo.head(), used_bytes(repo, FEATURES), overridden=False)
    assert found == {"git_dirty": True, "dirty_files": [FEATURES + CRLF_ONLY]} and "check it out with LF" in CRLF_ONLY
