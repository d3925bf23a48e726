"""compare_runs through the real server: runs logged as run_experiment logs them, sqlite MLflow."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tools.runs_lab import RunsLab, build_runs_lab, foreign_run, logged_run
from tools.compare_runs import differing, overlaps

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> RunsLab:
    return build_runs_lab(tmp_path_factory.mktemp("compare-runs"))


def with_model(lab: RunsLab, **params: Any) -> dict[str, Any]:
    config = lab.config()
    config["model"] = {"type": "xgboost", "params": {"n_estimators": 50, "max_depth": 3, **params}}
    return config


@pytest.fixture(scope="module")
def runs(lab: RunsLab) -> dict[str, str]:
    return {
        "base": logged_run(lab, primary=0.74, ci=0.02, config=with_model(lab)),
        "deeper": logged_run(lab, primary=0.75, ci=0.02, config=with_model(lab, max_depth=6)),
        "clearly_better": logged_run(lab, primary=0.85, ci=0.02, config=with_model(lab, max_depth=6, learning_rate=0.05)),
    }


async def compared(lab: RunsLab, run_ids: list[str]) -> dict[str, Any]:
    is_error, content = await lab.call("compare_runs", {"run_ids": run_ids})
    assert not is_error, content
    return content


async def test_config_differences_list_only_the_paths_that_differ(lab: RunsLab, runs: dict[str, str]) -> None:
    content = await compared(lab, [runs["base"], runs["deeper"], runs["clearly_better"]])
    differences = content["config_differences"]
    assert set(differences) == {"model.params.max_depth", "model.params.learning_rate"}
    assert differences["model.params.max_depth"] == {runs["base"]: 3, runs["deeper"]: 6, runs["clearly_better"]: 6}
    assert differences["model.params.learning_rate"][runs["base"]] is None
    assert content["pin_differences"] == {}


async def test_every_test_metric_is_compared_with_the_first_run(lab: RunsLab, runs: dict[str, str]) -> None:
    metrics = (await compared(lab, [runs["base"], runs["clearly_better"]]))["metric_differences"]
    assert set(metrics) == {"roc_auc", "pr_auc", "f1", "log_loss", "brier"}
    # 0.85 - 0.74 is 0.10999999999999999 in floating point: shown rounded, as run_experiment shows figures
    assert metrics["roc_auc"]["delta_vs_first"] == {runs["base"]: 0.0, runs["clearly_better"]: 0.11}
    assert metrics["roc_auc"]["values"] == {runs["base"]: 0.74, runs["clearly_better"]: 0.85}
    assert metrics["roc_auc"]["best_run_id"] == runs["clearly_better"] and metrics["log_loss"]["lower_is_better"] is True


async def test_overlapping_intervals_make_the_best_run_a_tie_within_noise(lab: RunsLab, runs: dict[str, str]) -> None:
    primary = (await compared(lab, [runs["base"], runs["deeper"]]))["primary"]
    assert primary["metric"] == "roc_auc" and primary["best_run_id"] == runs["deeper"]
    assert primary["ci_overlap"] is True and "within noise" in primary["verdict"]


async def test_separate_intervals_name_a_clear_winner(lab: RunsLab, runs: dict[str, str]) -> None:
    primary = (await compared(lab, [runs["base"], runs["clearly_better"]]))["primary"]
    assert primary["best_run_id"] == runs["clearly_better"] and primary["ci_overlap"] is False
    assert primary["ci_overlap_with_best"] == {runs["base"]: False}


async def test_a_failed_run_compares_as_unmeasured(lab: RunsLab, runs: dict[str, str]) -> None:
    failed = logged_run(lab, status="FAILED")
    content = await compared(lab, [failed, runs["base"]])
    assert content["primary"]["best_run_id"] == runs["base"] and content["primary"]["ci_overlap"] is None
    assert content["metric_differences"]["roc_auc"]["delta_vs_first"][runs["base"]] is None


async def test_a_run_of_another_project_denies_the_whole_comparison(lab: RunsLab, runs: dict[str, str]) -> None:
    other = foreign_run(lab)
    is_error, content = await lab.call("compare_runs", {"run_ids": [runs["base"], other]})
    assert is_error and content["rule_id"] == "runs.same_project" and other in content["reason"] and runs["base"] not in content["reason"]


@pytest.mark.parametrize("run_ids", [["a" * 32], ["a" * 32] * 2, [f"{i:032x}" for i in range(6)], ["a" * 32, "not-a-run"]])
async def test_fewer_than_two_more_than_five_repeated_or_malformed_ids_are_refused(lab: RunsLab, run_ids: list[str]) -> None:
    is_error, content = await lab.call("compare_runs", {"run_ids": run_ids})
    assert is_error and content["rule_id"] == "input.schema"


def test_a_key_missing_from_one_run_is_a_difference() -> None:
    assert differing({"r1": {"a": 1, "b": 2}, "r2": {"a": 1}}) == {"b": {"r1": 2, "r2": None}}


@pytest.mark.parametrize(("a", "b", "expected"), [
    ({"low": 0.7, "high": 0.8}, {"low": 0.79, "high": 0.9}, True),
    ({"low": 0.7, "high": 0.8}, {"low": 0.81, "high": 0.9}, False),
    ({"low": 0.7, "high": 0.8}, {"low": 0.8, "high": 0.9}, True),
    ({"low": 0.7, "high": 0.8}, None, None),
])  # fmt: skip
def test_intervals_overlap_when_they_share_a_point(a: Any, b: Any, expected: bool | None) -> None:
    assert overlaps(a, b) is expected
