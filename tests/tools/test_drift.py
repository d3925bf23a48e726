"""PSI drift baseline: bins from training rows, JSON-able, ~0 on identical data, large on shifts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tools.drift import drift_baseline, psi, psi_report
from tools.errors import InvalidInput


def training_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 10_000, n)
    income[rng.choice(n, n // 20, replace=False)] = np.nan
    return pd.DataFrame({
        "income": income,
        "employment": rng.choice(["salaried", "self_employed", "retired"], n, p=[0.6, 0.3, 0.1]),
        "applied_at": pd.date_range("2021-01-01", periods=n, freq="h"),
        "has_guarantor": rng.random(n) < 0.3,
    })


def test_baseline_has_quantile_bins_for_numbers_and_frequencies_for_categories() -> None:
    baseline = drift_baseline(training_frame(), n_bins=10)
    income, employment = baseline["features"]["income"], baseline["features"]["employment"]
    assert income["kind"] == "numeric" and len(income["edges"]) == 9 and len(income["fractions"]) == 10
    assert income["missing_fraction"] == pytest.approx(0.05)
    assert sum(income["fractions"]) + income["missing_fraction"] == pytest.approx(1.0)
    assert employment["kind"] == "categorical" and list(employment["categories"]) == ["salaried", "self_employed", "retired"]
    assert baseline["features"]["has_guarantor"]["kind"] == "categorical"
    assert "applied_at" not in baseline["features"]
    json.dumps(baseline, allow_nan=False)


def test_psi_of_the_training_data_against_itself_is_zero() -> None:
    frame = training_frame()
    baseline = drift_baseline(frame)
    assert all(value == pytest.approx(0.0, abs=1e-12) for value in psi_report(baseline, frame).values())


def test_psi_of_a_fresh_sample_from_the_same_population_is_small() -> None:
    baseline = drift_baseline(training_frame(seed=0))
    report = psi_report(baseline, training_frame(seed=1))
    assert all(value < 0.02 for value in report.values())


def test_psi_flags_a_shifted_numeric_feature_and_a_new_category_mix() -> None:
    frame = training_frame()
    baseline = drift_baseline(frame)
    shifted = frame["income"] + 10_000
    assert psi(baseline["features"]["income"], shifted) > 0.25
    unseen = pd.Series(["gig_worker"] * 500 + ["salaried"] * 500)
    assert psi(baseline["features"]["employment"], unseen) > 1.0


def test_psi_counts_a_rise_in_missing_values_as_drift() -> None:
    baseline = drift_baseline(training_frame())
    mostly_missing = pd.Series([np.nan] * 900 + [50_000.0] * 100)
    assert psi(baseline["features"]["income"], mostly_missing) > 1.0


def test_rare_categories_beyond_the_cap_are_pooled_as_other() -> None:
    frame = pd.DataFrame({"branch": ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5})
    feature = drift_baseline(frame, max_categories=2)["features"]["branch"]
    assert feature["categories"] == {"a": 0.5, "b": 0.3} and feature["other_fraction"] == pytest.approx(0.2)


def test_psi_report_marks_features_missing_from_the_new_data() -> None:
    baseline = drift_baseline(training_frame())
    assert psi_report(baseline, training_frame().drop(columns=["income"]))["income"] is None


def test_psi_refuses_empty_input() -> None:
    with pytest.raises(InvalidInput):
        psi(drift_baseline(training_frame())["features"]["income"], [])
