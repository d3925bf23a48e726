"""Paired bootstrap differences on the same rows (tools/paired.py) and the gates that read them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tools.gates import gate_receipt
import tools.resampling
from tools.paired import on_shared_rows, paired_improvement, paired_improvements

RNG = np.random.default_rng(7)
LABELS = RNG.integers(0, 2, 400)
GOOD = np.clip(LABELS * 0.35 + RNG.uniform(0, 0.65, 400), 0, 1)


def test_a_model_against_itself_improves_by_exactly_zero() -> None:
    found = paired_improvement(LABELS, GOOD, GOOD, "roc_auc", n_samples=100, seed=1)
    assert found["improvement"] == found["lower_bound"] == found["upper_bound"] == 0.0


def test_a_noise_sized_difference_neither_passes_nor_flips_the_lift_gate() -> None:
    nudged = np.clip(GOOD + RNG.normal(0, 0.01, 400), 0, 1)  # a model within noise of the baseline
    found = paired_improvement(LABELS, nudged, GOOD, "roc_auc", n_samples=300, seed=1)
    assert found["lower_bound"] < 0 < found["upper_bound"] and abs(found["improvement"]) < 0.01
    (entry,) = gate_receipt({"primary_metric": "roc_auc", "min_lift_over_baseline": 0.0}, {"baseline_paired": found})
    assert entry["status"] == "FAIL" and entry["observed"]["improvement"] == round(found["improvement"], 6)


def test_a_clearly_better_model_clears_the_lift_and_calibration_gates() -> None:
    prior = np.full(400, LABELS.mean())
    lift = paired_improvement(LABELS, GOOD, RNG.uniform(0, 1, 400), "roc_auc", n_samples=300, seed=1)
    calibration = paired_improvement(LABELS, GOOD, prior, "brier", n_samples=300, seed=1)
    receipt = gate_receipt({"primary_metric": "roc_auc", "min_lift_over_baseline": 0.0, "calibration_vs_prior": 0.0}, {"baseline_paired": lift, "calibration_paired": calibration})
    assert [e["status"] for e in receipt] == ["PASS", "PASS"] and lift["lower_bound"] > 0.1


def test_a_model_worse_calibrated_than_the_base_rate_fails_the_calibration_gate() -> None:
    overconfident = np.where(GOOD > 0.5, 0.999, 0.001)
    found = paired_improvement(LABELS, overconfident, np.full(400, LABELS.mean()), "log_loss", n_samples=200, seed=1)
    (entry,) = gate_receipt({"calibration_vs_prior": 0.0}, {"calibration_paired": found})
    assert entry["status"] == "FAIL" and found["improvement"] < 0


def test_comparisons_sharing_their_resamples_give_what_each_gives_alone(monkeypatch) -> None:
    tied = np.round(GOOD, 1)  # tie groups, and a threshold row
    references = {"lift": (RNG.uniform(0, 1, 400), "roc_auc"), "calibration": (np.full(400, LABELS.mean()), "brier"), "ranking": (GOOD, "pr_auc")}
    monkeypatch.setattr(tools.resampling, "BLOCK_CELLS", 3_000)  # several blocks, the last one short
    together = paired_improvements(LABELS, tied, references, n_samples=53, seed=4, confidence=0.9)
    alone = {name: paired_improvement(LABELS, tied, reference, metric, n_samples=53, seed=4, confidence=0.9) for name, (reference, metric) in references.items()}
    assert together == alone and together["lift"]["n_effective"] == 53


def test_runs_that_scored_different_rows_are_not_paired() -> None:
    frame = pd.DataFrame({"__row_id__": [3, 1, 2], "score": [0.2, 0.4, 0.9], "label": [0, 0, 1]})
    labels, mine, theirs = on_shared_rows(frame, frame.iloc[::-1])
    assert labels.tolist() == [0, 1, 0] and mine.tolist() == theirs.tolist()
    assert on_shared_rows(frame, frame.assign(__row_id__=[3, 1, 4])) is None
    assert on_shared_rows(frame, frame.assign(label=[1, 0, 1])) is None
