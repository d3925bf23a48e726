"""What run_experiment's result says of the spread of each metric across validation windows."""

from __future__ import annotations

from typing import Any

from tools.evaluation import METRICS, summarize_folds
from tools.experiment_report import _cv


def fold(value: float, **changes: Any) -> dict[str, Any]:
    return {**{metric: value for metric in METRICS}, **changes}


def test_one_validation_window_says_once_why_no_metric_has_a_spread() -> None:
    found = _cv({"folds": summarize_folds([fold(0.8, f1=0.5)])})
    assert found["cv_metrics"]["roc_auc"] == {"mean": 0.8, "std": None} and found["cv_metrics"]["f1"] == {"mean": 0.5, "std": None}
    assert found["cv_std_reason"] == "std is unknown: 1 validation window(s) measured each metric; a spread needs at least 2"


def test_folds_give_a_spread_and_no_shared_reason() -> None:
    found = _cv({"folds": summarize_folds([fold(0.8), fold(0.7)])})
    assert found["cv_metrics"]["roc_auc"]["std"] > 0 and "cv_std_reason" not in found


def test_a_metric_undefined_in_one_fold_keeps_its_own_reason() -> None:
    """precision is undefined in a fold without positive predictions: only it lacks a spread."""
    found = _cv({"folds": summarize_folds([fold(0.8, precision=None), fold(0.7, precision=0.5)])})
    assert found["cv_metrics"]["precision"]["std"] is None and found["cv_metrics"]["precision"]["std_reason"].startswith("unknown: 1 validation window(s) measured precision")
    assert "cv_std_reason" not in found
