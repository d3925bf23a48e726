"""What `mlgate promote` prints above the gate lines."""

from __future__ import annotations

from server.commands.promote import _receipt_lines

GATES = {"gates": [{"status": "FAIL", "gate": "min_primary_metric", "reason": "roc_auc must be at least 0.7; observed 0.37"}]}


def test_the_receipt_starts_with_the_rows_and_positive_labels_of_the_test_window() -> None:
    lines = _receipt_lines({"test_window": {"rows": 1000, "positives": 3}, "gate_receipt": GATES})
    assert lines == ["  measured on the test window: 1000 rows, 3 positive labels", "  FAIL    min_primary_metric: roc_auc must be at least 0.7; observed 0.37"]


def test_a_run_logged_without_the_counts_prints_the_gates_only() -> None:
    assert _receipt_lines({"test_window": None, "gate_receipt": GATES}) == ["  FAIL    min_primary_metric: roc_auc must be at least 0.7; observed 0.37"]
