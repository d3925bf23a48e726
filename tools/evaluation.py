"""Server-side evaluation (DESIGN §5): metrics from the child's predictions against labels the child
never saw, bootstrap confidence intervals, fairness slices, the class-prior baseline, the comparison
with the best prior run, and the deterministic evaluation report (its gate receipt: tools/gates.py).

Pure: arrays in, plain dicts out; no I/O, clock or environment. `scores` are predicted
probabilities of the positive class in [0, 1]; class metrics (f1, precision, recall, accuracy,
selection rates) predict positive when score >= `threshold` (0.5 unless told otherwise).
Conventions follow scikit-learn: pr_auc is average precision (step-wise, no interpolation),
precision/recall/f1 are 0 when their denominator is 0, log_loss clips scores to [1e-15, 1 - 1e-15].
roc_auc and pr_auc are None when the labels hold a single class (undefined, not 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tools.errors import InvalidInput
from tools.metric_names import METRICS, REPORT_DIGITS, is_better
from tools.provenance import stable_json
from tools.resampling import block_metrics, resamples, scored
from tools.labels import binary_labels

DEFAULT_THRESHOLD = 0.5
CI_LEVEL = 0.95
LOG_LOSS_EPS = 1e-15
REPORT_SCHEMA_VERSION = 1
MISSING_SLICE = "<missing>"


def probabilities(scores: Any, rows: int) -> np.ndarray:
    """Scores as float64. Raises InvalidInput unless there is one finite value in [0, 1] per row."""
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if values.size != rows or not np.all(np.isfinite(values)) or values.min(initial=0) < 0 or values.max(initial=0) > 1:
        raise InvalidInput(
            f"predictions must be {rows} finite probabilities in [0, 1] (got {values.size} values)",
            "make the model output predicted probabilities of the positive class, one per evaluation row",
            rule_id="evaluation.predictions",
        )
    return values


def labelled_scores(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 labels, probabilities) of the same non-zero length. Raises InvalidInput otherwise."""
    y = binary_labels(labels)
    if y.size == 0:
        raise InvalidInput("there are no evaluation rows to score", "check the split: every evaluated window needs rows", rule_id="evaluation.predictions")
    return y, probabilities(scores, y.size)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) identity; ties count one half."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    from scipy.stats import rankdata  # noqa: PLC0415 - deferred: a slow import kept off server start (bench.cold_start)

    rank_sum = rankdata(scores)[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Sum over distinct thresholds of (recall step) x precision, as sklearn's average_precision_score."""
    if labels.sum() == 0 or labels.sum() == labels.size:
        return None
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(sorted_scores)), labels.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_group]
    precision = true_positives / (last_of_group + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def class_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores >= threshold
    actual = labels == 1
    tp, fp, fn = int(np.sum(predicted & actual)), int(np.sum(predicted & ~actual)), int(np.sum(~predicted & actual))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "accuracy": float(np.mean(predicted == actual)),
    }


def compute_metrics(labels: Any, scores: Any, threshold: float = DEFAULT_THRESHOLD) -> dict[str, float | None]:
    """All METRICS for binary labels (0/1) and positive-class probabilities.

    Raises InvalidInput on non-binary labels, bad scores or a length mismatch.
    """
    y, p = labelled_scores(labels, scores)
    return _metrics(y, p, threshold)


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | None]:
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": average_precision(y, p),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "brier": float(np.mean((p - y) ** 2)),
        **class_metrics(y, p, threshold),
    }


def bootstrap_ci(labels: Any, scores: Any, *, n_samples: int, seed: int, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """95% percentile bootstrap intervals for every metric.

    Resamples rows with replacement `n_samples` times from `np.random.default_rng(seed)`. A resample
    holding a single class is skipped (roc_auc/pr_auc are undefined there) for every metric alike,
    so all intervals rest on the same `n_effective` resamples. Intervals are None when none is left.
    Each resample's metrics are those of compute_metrics on its rows, bit for bit (tools/resampling.py).
    """
    y, p = labelled_scores(labels, scores)
    found = scored(y, p, threshold, LOG_LOSS_EPS)
    drawn: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    for block in resamples(np.random.default_rng(seed), y.size, n_samples):
        values = block_metrics(found, block, METRICS)
        for m in METRICS:
            drawn[m].append(values[m][values["both_classes"]])
    samples = {m: np.concatenate(parts) if parts else np.empty(0) for m, parts in drawn.items()}
    tail = (1 - CI_LEVEL) / 2 * 100
    intervals = {m: _percentiles(samples[m], tail) for m in METRICS}
    n_effective = int(samples["roc_auc"].size)
    return {"level": CI_LEVEL, "method": "percentile", "n_requested": n_samples, "n_effective": n_effective, "seed": seed, "intervals": intervals}


def _percentiles(values: np.ndarray, tail: float) -> dict[str, float] | None:
    if not values.size:
        return None
    low, high = np.percentile(values, [tail, 100 - tail])
    return {"low": float(low), "high": float(high)}


def _group_stats(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    return {
        "count": int(y.size),
        "positive_rate": float(y.mean()) if y.size else None,
        "roc_auc": roc_auc(y, p) if y.size else None,
        "selection_rate": float(np.mean(p >= threshold)) if y.size else None,
    }


def _difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else value - reference


def _slice_values(values: Any, rows: int, attribute: str) -> np.ndarray:
    series = pd.Series(values).reset_index(drop=True)
    if len(series) != rows:
        raise InvalidInput(
            f"protected attribute {attribute!r} has {len(series)} values for {rows} rows",
            "pass one value per evaluation row",
            rule_id="evaluation.slices",
        )
    return np.asarray([MISSING_SLICE if pd.isna(v) else str(v) for v in series], dtype=object)


def attribute_slices(labels: np.ndarray, scores: np.ndarray, values: np.ndarray, threshold: float, min_slice_size: int = 1) -> dict[str, Any]:
    """Per value: count, positive rate, roc_auc, selection rate, their gaps to the overall group and
    the selection-rate ratio to the most favoured slice (highest selection rate). A slice of fewer
    than `min_slice_size` rows is `{count, status: "insufficient"}`: too few rows for a metric."""
    overall = _group_stats(labels, scores, threshold)
    slices: dict[str, Any] = {}
    for value in sorted(set(values.tolist())):
        members = values == value
        if int(members.sum()) < min_slice_size:
            slices[value] = {"count": int(members.sum()), "status": "insufficient"}
            continue
        stats = {**_group_stats(labels[members], scores[members], threshold), "status": "ok"}
        stats["selection_rate_diff"] = _difference(stats["selection_rate"], overall["selection_rate"])
        stats["roc_auc_diff"] = _difference(stats["roc_auc"], overall["roc_auc"])
        slices[value] = stats
    return {"overall": overall, "slices": slices, "min_slice_size": min_slice_size, **_selection_ratios(slices)}


def _selection_ratios(slices: dict[str, Any]) -> dict[str, Any]:
    """Each measured slice's selection rate over the most favoured one's (the four-fifths-rule
    ratio); None when no measured slice selects anyone."""
    measured = {k: s for k, s in slices.items() if s["status"] == "ok"}
    if not measured:
        return {"most_favoured": None, "selection_rate_ratio_min_max": None, "max_abs_selection_rate_diff": None}
    favoured = max(measured, key=lambda k: (measured[k]["selection_rate"], k))
    top = measured[favoured]["selection_rate"]
    for stats in measured.values():
        stats["selection_rate_ratio"] = stats["selection_rate"] / top if top > 0 else None
    return {
        "most_favoured": favoured,
        "selection_rate_ratio_min_max": min(s["selection_rate"] for s in measured.values()) / top if top > 0 else None,
        "max_abs_selection_rate_diff": max(abs(s["selection_rate_diff"]) for s in measured.values()),
    }


def slice_metrics(labels: Any, scores: Any, attributes: Mapping[str, Any], threshold: float = DEFAULT_THRESHOLD, min_slice_size: int = 1) -> dict[str, Any]:
    """Fairness evidence per protected attribute: `{attribute: attribute_slices(...)}`.

    Values are compared as strings (bin numeric attributes first: tools/fairness.py); missing values
    form their own slice "<missing>". Slices under `min_slice_size` rows are reported as
    insufficient, without metrics. Raises InvalidInput when an attribute's length differs from the labels.
    """
    y, p = labelled_scores(labels, scores)
    return {name: attribute_slices(y, p, _slice_values(values, y.size, name), threshold, min_slice_size) for name, values in sorted(attributes.items())}


def prior_baseline(train_labels: Any, eval_labels: Any, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The no-model heuristic: every row scores the training positive rate (the class prior)."""
    train = binary_labels(train_labels)
    if train.size == 0:
        raise InvalidInput("the class-prior baseline needs training rows", "check the split", rule_id="evaluation.baseline")
    train_rate = float(train.mean())
    y, _ = labelled_scores(eval_labels, np.full(len(eval_labels), train_rate))
    return {"name": "class_prior", "train_positive_rate": train_rate, "metrics": _metrics(y, np.full(y.size, train_rate), threshold)}


def summarize_folds(per_fold: Sequence[Mapping[str, float | None]]) -> dict[str, Any]:
    """Mean, population std and per-fold values of each metric over the cross-validation folds;
    std is None (with `std_reason`) when fewer than two folds measured the metric."""
    summary = {}
    for metric in METRICS:
        values = [fold.get(metric) for fold in per_fold]
        defined = [v for v in values if v is not None]
        summary[metric] = {"values": values, "mean": float(np.mean(defined)) if defined else None, "std": float(np.std(defined)) if len(defined) > 1 else None}
        if len(defined) < 2:
            # One window has no spread to measure: 0.0 would read as "perfectly stable".
            summary[metric]["std_reason"] = f"unknown: {len(defined)} validation window(s) measured {metric}; a spread needs at least 2"
    return summary


OUTCOME_RULE = (
    "confirmed: the whole 95% CI of the new primary metric is better than the best prior run; "
    "negative: the whole CI is worse; neutral: the CI contains the prior value, or there is no prior run"
)


def outcome(metric: str, interval: Mapping[str, float] | None, best_prior: float | None) -> str:
    """confirmed / neutral / negative, by OUTCOME_RULE (a point estimate alone never confirms)."""
    if best_prior is None or interval is None:
        return "neutral"
    if is_better(metric, interval["low"], best_prior) and is_better(metric, interval["high"], best_prior):
        return "confirmed"
    if is_better(metric, best_prior, interval["low"]) and is_better(metric, best_prior, interval["high"]):
        return "negative"
    return "neutral"


def compare_to_prior(metric: str, value: float | None, interval: Mapping[str, float] | None, best_prior: Mapping[str, Any] | None) -> dict[str, Any]:
    """The comparison section: `best_prior` is `{run_id, value}` of the best earlier run, or None.
    `metric_delta` is new minus prior in the metric's own units (negative is better for losses)."""
    prior_value = None if best_prior is None else best_prior["value"]
    return {
        "metric": metric,
        "best_prior_run_id": None if best_prior is None else best_prior["run_id"],
        "best_prior_value": prior_value,
        "metric_delta": _difference(value, prior_value),
        "outcome": outcome(metric, interval, prior_value),
        "rule": OUTCOME_RULE,
    }


def _json_ready(value: Any, digits: int) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(v, digits) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else round(float(value), digits) + 0.0
    return value


def build_report(sections: Mapping[str, Any], digits: int = REPORT_DIGITS) -> dict[str, Any]:
    """The evaluation report: the given sections (metrics, confidence_intervals, baselines, slices,
    comparison, gates, split, ...) with floats rounded to `digits`, numpy scalars as Python numbers
    and NaN/Infinity as null, plus `schema_version`."""
    return _json_ready({"schema_version": REPORT_SCHEMA_VERSION, **sections}, digits)


def report_json(report: Mapping[str, Any], digits: int = REPORT_DIGITS) -> str:
    """Stable JSON text of a report (sorted keys, fixed rounding): same inputs, identical bytes."""
    return stable_json(_json_ready(report, digits))
