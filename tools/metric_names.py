"""The metrics a run reports and which way each one improves: plain Python, so the views and
gates that only compare figures start without numpy (tools/evaluation.py computes them)."""

from __future__ import annotations

METRICS = ("roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "brier")
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
REPORT_DIGITS = 6


def is_better(metric: str, value: float, reference: float) -> bool:
    return value < reference if metric in LOWER_IS_BETTER else value > reference


def improvement(metric: str, value: float, reference: float) -> float:
    """How much better `value` is than `reference` (positive = better), whatever the direction."""
    return reference - value if metric in LOWER_IS_BETTER else value - reference
