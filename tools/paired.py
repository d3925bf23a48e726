"""Paired bootstrap differences: is model A better than model B on the same rows, beyond noise?

Comparing two point estimates lets noise decide (a -0.0004 difference flips a gate). Here both
models' scores on the SAME rows are resampled together, so the row-to-row difficulty the two share
cancels, and the gate reads a one-sided lower confidence bound of the improvement instead of the
point difference. Pure: arrays in, plain dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tools.evaluation import DEFAULT_THRESHOLD, LOG_LOSS_EPS, average_precision, class_metrics, labelled_scores, probabilities, roc_auc
from tools.metric_names import improvement
from tools.resampling import Scored, block_metrics, drawn_positives, resamples, scored

DEFAULT_CONFIDENCE = 0.95


def _valid_confidence(confidence: float) -> float:
    if not 0.5 <= float(confidence) < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence!r}")
    return float(confidence)


def paired_improvement(labels: Any, scores: Any, reference: Any, metric: str, *, n_samples: int, seed: int, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """How much better `scores` are than `reference` on `metric`, measured on the same rows.

    Returns `{metric, improvement, lower_bound, upper_bound, confidence, n_effective, method}`:
    `improvement` is positive when `scores` are better (whatever the metric's direction);
    `lower_bound` is the one-sided `confidence` lower bound of the improvement over `n_samples`
    paired resamples (`np.random.default_rng(seed)`), `upper_bound` the matching upper bound.
    Bounds are None when no resample held both classes. Raises InvalidInput on bad labels/scores.
    """
    found = paired_improvements(labels, scores, {"only": (reference, metric)}, n_samples=n_samples, seed=seed, confidence=confidence)
    return found["only"]


def paired_improvements(labels: Any, scores: Any, comparisons: Mapping[str, tuple[Any, str]], *, n_samples: int, seed: int, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, dict[str, Any]]:
    """paired_improvement of `scores` against each `(reference, metric)` of `comparisons`, by name.

    Each result is the one paired_improvement gives for that pair alone: every comparison starts
    from `np.random.default_rng(seed)`, so they all read the same resamples, drawn here once.
    """
    y, p = labelled_scores(labels, scores)
    against = {name: (probabilities(reference, y.size), metric) for name, (reference, metric) in comparisons.items()}
    level = _valid_confidence(confidence)
    model = scored(y, p, DEFAULT_THRESHOLD, LOG_LOSS_EPS)
    baselines = {name: scored(y, q, DEFAULT_THRESHOLD, LOG_LOSS_EPS) for name, (q, _) in against.items()}
    metrics = {name: metric for name, (_, metric) in against.items()}
    gains: dict[str, list[np.ndarray]] = {name: [] for name in against}
    for block in resamples(np.random.default_rng(seed), y.size, n_samples):
        for name, gain in _block_gains(metrics, model, baselines, block).items():
            gains[name].append(gain)
    return {name: _result(metric, _gain(metric, y, p, q), gains[name], level) for name, (q, metric) in against.items()}


def _result(metric: str, point: float | None, gains: list[np.ndarray], level: float) -> dict[str, Any]:
    drawn = np.concatenate(gains) if gains else np.empty(0)
    low, high = _bounds(drawn, level)
    return {"metric": metric, "improvement": point, "lower_bound": low, "upper_bound": high, "confidence": level, "n_effective": int(drawn.size), "method": "paired percentile bootstrap, one-sided"}


def metric_value(metric: str, y: np.ndarray, p: np.ndarray) -> float | None:
    """One metric only (the point estimate computes just the metric it compares)."""
    if metric == "roc_auc":
        return roc_auc(y, p)
    if metric == "pr_auc":
        return average_precision(y, p)
    if metric == "log_loss":
        clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    if metric == "brier":
        return float(np.mean((p - y) ** 2))
    return class_metrics(y, p, DEFAULT_THRESHOLD)[metric]


def _block_gains(metrics: Mapping[str, str], model: Scored, baselines: Mapping[str, Scored], block: np.ndarray) -> dict[str, np.ndarray]:
    """Per comparison, the gain on each resample of the block that holds both classes
    (tools/resampling.py: the same floats as metric_value on each resample's rows)."""
    positives = drawn_positives(model, block)
    a = block_metrics(model, block, set(metrics.values()), positives)
    keep = a["both_classes"]
    gains = {}
    for name, metric in metrics.items():
        b = block_metrics(baselines[name], block, (metric,), positives)
        gains[name] = np.asarray(improvement(metric, a[metric][keep], b[metric][keep]), dtype=np.float64)
    return gains


def _gain(metric: str, y: np.ndarray, p: np.ndarray, q: np.ndarray) -> float | None:
    a, b = metric_value(metric, y, p), metric_value(metric, y, q)
    return None if a is None or b is None else float(improvement(metric, a, b))


def _bounds(gains: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    if not gains.size:
        return None, None
    tail = (1 - confidence) * 100
    low, high = np.percentile(gains, [tail, 100 - tail])
    return float(low), float(high)


def as_metrics(prefix: str, found: Mapping[str, Any]) -> dict[str, float | None]:
    """MLflow metric names for a paired comparison: `<prefix>`, `<prefix>_lcb`, `<prefix>_ucb`."""
    return {prefix: found["improvement"], f"{prefix}_lcb": found["lower_bound"], f"{prefix}_ucb": found["upper_bound"]}


def on_shared_rows(run: Any, champion: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(labels, run scores, champion scores) of two runs' test predictions (frames with
    `__row_id__`, `score`, `label`) when both scored exactly the same rows with the same labels;
    None otherwise (different data or split: no paired comparison is honest then)."""
    left, right = run.set_index("__row_id__").sort_index(), champion.set_index("__row_id__").sort_index()
    if len(left) == 0 or not left.index.equals(right.index) or not np.array_equal(left["label"].to_numpy(), right["label"].to_numpy()):
        return None
    return left["label"].to_numpy(), left["score"].to_numpy(dtype=np.float64), right["score"].to_numpy(dtype=np.float64)
