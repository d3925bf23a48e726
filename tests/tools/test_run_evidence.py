"""The split section a run reports: labels per evaluation window and the few-labels warning."""

from __future__ import annotations

import numpy as np

from tools.run_evidence import split_section, tracking_records
from tools.splits import stratified_kfold


def labels(positives: int, rows: int = 400) -> np.ndarray:
    return np.array([1] * positives + [0] * (rows - positives))


def test_each_evaluation_window_reports_its_rows_and_positive_labels() -> None:
    section = split_section(stratified_kfold(labels(80), n_splits=2, test_size=0.2, seed=0), {"test": 0.2}, 0.05, few=10)
    assert section["label_counts"]["test"] == {"rows": 80, "positives": 16}
    assert [section["label_counts"][f"validation[{i}]"]["rows"] for i in (0, 1)] == [160, 160] and section["warnings"] == []


def test_a_window_with_few_labels_of_one_class_is_warned_about_with_its_counts() -> None:
    section = split_section(stratified_kfold(labels(20), n_splits=2, test_size=0.2, seed=0), {"test": 0.2}, 0.05, few=10)
    assert section["label_counts"]["test"] == {"rows": 80, "positives": 4}
    assert section["warnings"] == [
        "few labels of one class in validation[0] (8 positive, 152 negative), validation[1] (8 positive, 152 negative), test (4 positive, 76 negative): "
        "metrics and gates measured there rest on a handful of cases (fewer than 10); a longer history or a larger test_size gives more"
    ]


def test_the_test_windows_rows_and_positive_labels_are_logged_for_promotes_receipt() -> None:
    section = split_section(stratified_kfold(labels(80), n_splits=2, test_size=0.2, seed=0), {"test": 0.2}, 0.05, few=10)
    metrics, _ = tracking_records({"split": section, "leakage": None})
    assert (metrics["split_test_rows"], metrics["split_test_positives"]) == (80.0, 16.0)
