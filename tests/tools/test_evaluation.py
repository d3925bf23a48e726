"""Server-side evaluation: metric values, bootstrap CIs, slices, baseline, outcome, gates, report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as sk

from tools.errors import InvalidInput
from tools.evaluation import (
    METRICS,
    bootstrap_ci,
    build_report,
    compare_to_prior,
    compute_metrics,
    outcome,
    prior_baseline,
    report_json,
    slice_metrics,
    summarize_folds,
)
from tools.gates import gate_receipt

LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]
TEMPLATE_GATES = {"primary_metric": "roc_auc", "min_primary_metric": 0.70, "min_lift_over_baseline": 0.0, "champion_tolerance": 0.005, "max_seed_variance": 0.005}


def test_metrics_match_hand_computed_values_on_a_small_example() -> None:
    got = compute_metrics(LABELS, SCORES)
    # Predicted positive at >= 0.5: only 0.8, so tp=1, fp=0, fn=1.
    expected = {
        "roc_auc": 0.75,  # positive/negative pairs ranked right: 3 of 4
        "pr_auc": (0.5 * 1.0) + (0.5 * 2 / 3),  # recall steps at 0.8 (P=1) and 0.35 (P=2/3)
        "precision": 1.0,
        "recall": 0.5,
        "f1": 2 / 3,
        "accuracy": 0.75,
        "brier": (0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4,
        "log_loss": -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4,
    }
    assert got.keys() == set(METRICS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_metrics_agree_with_scikit_learn_on_random_scores_with_ties() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 1)
    got = compute_metrics(labels, scores)
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    assert got["pr_auc"] == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15)), abs=1e-12)
    assert got["f1"] == pytest.approx(sk.f1_score(labels, scores >= 0.5), abs=1e-12)


def test_threshold_decides_the_class_metrics() -> None:
    assert compute_metrics(LABELS, SCORES, threshold=0.3)["recall"] == 1.0
    assert compute_metrics(LABELS, SCORES, threshold=0.9)["precision"] == 0.0


def test_ranking_metrics_are_none_when_the_labels_hold_one_class() -> None:
    got = compute_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert got["roc_auc"] is None and got["pr_auc"] is None
    assert got["accuracy"] == 1.0


def test_an_empty_evaluation_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no evaluation rows"):
        compute_metrics([], [])


@pytest.mark.parametrize("scores", [[0.1, 0.2, 0.3], [0.1, 0.2, 1.3, 0.4], [0.1, float("nan"), 0.3, 0.4]])
def test_scores_that_are_not_one_probability_per_row_are_refused(scores: list[float]) -> None:
    with pytest.raises(InvalidInput, match="probabilities"):
        compute_metrics(LABELS, scores)


def test_bootstrap_is_deterministic_for_a_seed_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(labels * 0.3 + rng.random(500) * 0.7, 0, 1)
    first = bootstrap_ci(labels, scores, n_samples=100, seed=9)
    assert first == bootstrap_ci(labels, scores, n_samples=100, seed=9)
    assert first != bootstrap_ci(labels, scores, n_samples=100, seed=10)
    point = compute_metrics(labels, scores)
    for name in METRICS:
        interval = first["intervals"][name]
        assert interval["low"] <= point[name] <= interval["high"], name
    assert (first["level"], first["n_requested"], first["n_effective"]) == (0.95, 100, 100)


def test_bootstrap_skips_single_class_resamples_and_reports_the_effective_count() -> None:
    result = bootstrap_ci([0, 0, 0, 0, 0, 1], [0.1, 0.2, 0.1, 0.3, 0.2, 0.9], n_samples=200, seed=1)
    # P(no positive among 6 draws) = (5/6)^6 ~ 0.33: about a third of the resamples are skipped.
    assert 100 < result["n_effective"] < 170
    assert result["intervals"]["roc_auc"]["high"] <= 1.0


def test_bootstrap_of_a_single_class_evaluation_has_no_intervals() -> None:
    result = bootstrap_ci([1, 1, 1], [0.5, 0.6, 0.7], n_samples=20, seed=1)
    assert result["n_effective"] == 0
    assert all(interval is None for interval in result["intervals"].values())


def test_slice_metrics_per_protected_attribute_value() -> None:
    labels = [1, 0, 1, 0, 1, 0]
    scores = [0.9, 0.2, 0.6, 0.4, 0.3, 0.7]
    report = slice_metrics(labels, scores, {"gender": ["a", "a", "a", "b", "b", "b"]})["gender"]
    assert report["overall"] == {"count": 6, "positive_rate": 0.5, "roc_auc": pytest.approx(6 / 9), "selection_rate": 0.5}
    a, b = report["slices"]["a"], report["slices"]["b"]
    assert (a["count"], a["roc_auc"], a["selection_rate"], a["positive_rate"]) == (3, 1.0, pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (b["roc_auc"], b["selection_rate"]) == (0.0, pytest.approx(1 / 3))
    assert a["selection_rate_diff"] == pytest.approx(1 / 6) and b["selection_rate_diff"] == pytest.approx(-1 / 6)
    assert b["roc_auc_diff"] == pytest.approx(-6 / 9)
    assert report["selection_rate_ratio_min_max"] == pytest.approx(0.5)
    assert report["max_abs_selection_rate_diff"] == pytest.approx(1 / 6)


def test_missing_attribute_values_form_their_own_slice_and_single_class_slices_have_no_auc() -> None:
    report = slice_metrics([1, 0, 1, 1], [0.9, 0.1, 0.8, 0.7], {"age_band": ["18-25", "18-25", None, float("nan")]})["age_band"]
    assert sorted(report["slices"]) == ["18-25", "<missing>"]
    assert report["slices"]["<missing>"]["count"] == 2
    assert report["slices"]["<missing>"]["roc_auc"] is None


def test_slice_attribute_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(InvalidInput, match="gender"):
        slice_metrics(LABELS, SCORES, {"gender": ["a", "b"]})


def test_prior_baseline_scores_every_row_with_the_training_positive_rate() -> None:
    baseline = prior_baseline([1, 0, 0, 0], [0, 1, 0, 0])
    assert baseline["train_positive_rate"] == 0.25
    m = baseline["metrics"]
    assert (m["roc_auc"], m["pr_auc"], m["recall"], m["accuracy"]) == (0.5, 0.25, 0.0, 0.75)
    assert m["brier"] == pytest.approx((3 * 0.25**2 + 0.75**2) / 4)


def test_summarize_folds_reports_mean_and_std_and_ignores_undefined_values() -> None:
    summary = summarize_folds([{"roc_auc": 0.7}, {"roc_auc": 0.9}, {"roc_auc": None}])
    assert summary["roc_auc"]["mean"] == pytest.approx(0.8) and summary["roc_auc"]["std"] == pytest.approx(0.1)
    assert {k: summary["brier"][k] for k in ("values", "mean", "std")} == {"values": [None, None, None], "mean": None, "std": None}


def test_one_validation_window_reports_its_std_as_unknown_not_zero() -> None:
    summary = summarize_folds([{"roc_auc": 0.7}])
    assert summary["roc_auc"]["mean"] == pytest.approx(0.7) and summary["roc_auc"]["std"] is None
    assert summary["roc_auc"]["std_reason"].startswith("unknown: 1 validation window")


@pytest.mark.parametrize(
    ("metric", "interval", "prior", "expected"),
    [
        ("roc_auc", {"low": 0.72, "high": 0.78}, 0.70, "confirmed"),
        ("roc_auc", {"low": 0.72, "high": 0.78}, 0.80, "negative"),
        ("roc_auc", {"low": 0.72, "high": 0.78}, 0.75, "neutral"),
        ("roc_auc", {"low": 0.72, "high": 0.78}, None, "neutral"),
        ("roc_auc", None, 0.5, "neutral"),
        ("log_loss", {"low": 0.30, "high": 0.35}, 0.40, "confirmed"),
        ("log_loss", {"low": 0.30, "high": 0.35}, 0.25, "negative"),
    ],
)
def test_outcome_needs_the_whole_interval_beyond_the_best_prior_run(metric: str, interval: dict | None, prior: float | None, expected: str) -> None:
    assert outcome(metric, interval, prior) == expected


def test_compare_to_prior_reports_delta_and_the_prior_run() -> None:
    section = compare_to_prior("roc_auc", 0.75, {"low": 0.72, "high": 0.78}, {"run_id": "abc", "value": 0.70})
    assert section["metric_delta"] == pytest.approx(0.05)
    assert (section["best_prior_run_id"], section["outcome"]) == ("abc", "confirmed")
    assert compare_to_prior("roc_auc", 0.75, None, None)["metric_delta"] is None


def _report(order: list[str]) -> dict:
    labels, scores = [0, 1, 0, 1, 1, 0], [0.2, 0.7, 0.4, 0.9, 0.45, 0.1]
    sections = {
        "metrics": compute_metrics(labels, scores),
        "confidence_intervals": bootstrap_ci(labels, scores, n_samples=30, seed=3),
        "slices": slice_metrics(labels, scores, {"gender": list("ababab")}),
        "gates": gate_receipt(TEMPLATE_GATES, {"primary_metric": 0.9, "baseline_primary_metric": 0.5}),
        "extra": {"nan": float("nan"), "numpy": np.float32(0.1234567891), "count": np.int64(3), "flag": np.bool_(True), "neg_zero": -0.0},
    }
    return build_report({key: sections[key] for key in order})


def test_evaluation_report_json_is_byte_identical_for_the_same_inputs() -> None:
    first = report_json(_report(["metrics", "confidence_intervals", "slices", "gates", "extra"]))
    second = report_json(_report(["extra", "gates", "slices", "confidence_intervals", "metrics"]))
    assert first == second
    parsed = json.loads(first)
    assert parsed["schema_version"] == 1
    assert parsed["extra"] == {"nan": None, "numpy": 0.123457, "count": 3, "flag": True, "neg_zero": 0.0}
    assert first.endswith("}\n") and list(parsed) == sorted(parsed)
