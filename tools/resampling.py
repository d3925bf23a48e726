"""Bootstrap resamples in blocks, and every metric of many resamples at once.

A loop over resamples that gathers each resample's rows and sorts its scores (one argsort per
resample for roc_auc and again for pr_auc) took most of the server's own time in run_experiment:
about 12 ms per resample of 60 000 rows, run for the intervals of two sections and for every
paired comparison. Here a resample is a row of counts: how often it drew a positive and a negative
from each group of tied scores. The scores are sorted once; one bincount per block gives the counts
of all its resamples, and roc_auc, pr_auc and the class metrics follow from them. brier and
log_loss are means of per-row terms computed once and gathered per resample.

Exact, not approximate: every count and every sum of counts is an integer below 2**53, so float64
holds it exactly, and each metric is computed from the very numbers, in the very order, of
tools.evaluation's one-resample functions: the same float, bit for bit (tests/tools/test_resampling.py
holds them to ==). Pure: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import NamedTuple

import numpy as np

BLOCK_CELLS = 262_144  # resamples x rows per block: its matrices stay in the CPU's caches (500 paired resamples of 60k rows: 1.08 s at 2M cells, 0.75 s here)
CLASS_METRICS = frozenset({"f1", "precision", "recall", "accuracy"})
COUNTED = CLASS_METRICS | {"roc_auc", "pr_auc"}  # metrics that follow from the counts per tie group


def resamples(rng: np.random.Generator, rows: int, n_samples: int) -> Iterator[np.ndarray]:
    """Blocks of row indices, one resample per matrix row: the very draws of `n_samples` calls of
    `rng.integers(0, rows, rows)` in turn (the generator's stream does not depend on the blocking)."""
    block = max(1, BLOCK_CELLS // max(rows, 1))
    for start in range(0, int(n_samples), block):
        yield rng.integers(0, rows, (min(block, int(n_samples) - start), rows))


class Scored(NamedTuple):
    """What every resample of one score vector shares, computed once."""

    labels: np.ndarray  # 0/1
    group_scores: np.ndarray  # the distinct scores, ascending
    key: np.ndarray  # per row: its tie group, plus the number of groups if it is a positive: the cell a draw of it counts in
    squared_error: np.ndarray  # per row: (score - label)^2, brier's term
    log_loss_term: np.ndarray  # per row: y log(p) + (1 - y) log(1 - p), p clipped
    threshold: float


def scored(labels: np.ndarray, scores: np.ndarray, threshold: float, log_loss_eps: float) -> Scored:
    """`labels` 0/1 and `scores` in [0, 1] of the same length (validated by the caller)."""
    group_scores, group = np.unique(scores, return_inverse=True)
    clipped = np.clip(scores, log_loss_eps, 1 - log_loss_eps)
    term = labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)
    return Scored(labels, group_scores, group.astype(np.int64) + group_scores.size * labels.astype(np.int64), (scores - labels) ** 2, term, float(threshold))


def block_metrics(found: Scored, block: np.ndarray, wanted: Collection[str], positives: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each `wanted` metric (tools.evaluation.METRICS names) of every resample in `block` (row
    indices), and `both_classes`: whether the resample drew a positive and a negative (roc_auc and
    pr_auc are NaN where it did not). `positives`: drawn_positives(found, block) when known."""
    positives = drawn_positives(found, block) if positives is None else positives
    both = (positives > 0) & (positives < block.shape[1])
    values: dict[str, np.ndarray] = {"both_classes": both}
    if COUNTED & set(wanted):
        values |= _counted(group_counts(found, block), found.group_scores >= found.threshold, both, wanted)
    if "brier" in wanted:
        values["brier"] = found.squared_error[block].mean(axis=1)
    if "log_loss" in wanted:
        values["log_loss"] = -found.log_loss_term[block].mean(axis=1)
    return values


def drawn_positives(found: Scored, block: np.ndarray) -> np.ndarray:
    """How many positives each resample of the block drew (the same for any scores of these rows)."""
    return found.labels[block].sum(axis=1, dtype=np.int64)


def _counted(counts: np.ndarray, predicted: np.ndarray, both: np.ndarray, wanted: Collection[str]) -> dict[str, np.ndarray]:
    negative, positive = counts[:, 0], counts[:, 1]
    values = {"roc_auc": counted_roc_auc(positive, negative, both)} if "roc_auc" in wanted else {}
    if "pr_auc" in wanted:
        values["pr_auc"] = counted_average_precision(positive, negative, both)
    if CLASS_METRICS & set(wanted):
        values |= counted_class_metrics(positive, negative, predicted)
    return values


def group_counts(found: Scored, block: np.ndarray) -> np.ndarray:
    """How many negatives ([:, 0]) and positives ([:, 1]) each resample drew from each tie group,
    groups in ascending score order: int64 of shape (resamples, 2, groups)."""
    cells = 2 * found.group_scores.size
    keys = found.key[block] + cells * np.arange(block.shape[0])[:, None]
    return np.bincount(keys.ravel(), minlength=block.shape[0] * cells).reshape(block.shape[0], 2, -1)


def counted_roc_auc(positive: np.ndarray, negative: np.ndarray, both: np.ndarray) -> np.ndarray:
    """The Mann-Whitney count of (positive, negative) pairs ordered right, ties one half, over the
    product of class sizes. In integers (twice the count: 2 x negatives at or below - negatives
    tied), so exact: the very numerator and denominator roc_auc gets from its rank sum, the same float."""
    at_or_below = np.cumsum(negative, axis=1)
    twice_pairs = 2 * np.einsum("ij,ij->i", positive, at_or_below) - np.einsum("ij,ij->i", positive, negative)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(both, (twice_pairs / 2) / (positive.sum(axis=1) * negative.sum(axis=1)), np.nan)


def counted_average_precision(positive: np.ndarray, negative: np.ndarray, both: np.ndarray) -> np.ndarray:
    """Average precision over each resample's distinct thresholds (the groups it drew from), in
    descending score order: the true positives and rows counted at the end of each group, as
    tools.evaluation.average_precision counts them after sorting that resample."""
    values = np.full(positive.shape[0], np.nan)
    for r in np.flatnonzero(both):
        drawn = (positive[r, ::-1] + negative[r, ::-1]) > 0
        tp, rows = np.cumsum(positive[r, ::-1])[drawn], np.cumsum(positive[r, ::-1] + negative[r, ::-1])[drawn]
        values[r] = np.sum(np.diff(np.r_[0.0, tp / tp[-1]]) * (tp / rows))
    return values


def counted_class_metrics(positive: np.ndarray, negative: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """precision, recall, f1 and accuracy at the threshold (`predicted`: the groups at or above it);
    a zero denominator gives 0, as tools.evaluation._ratio does."""
    tp, fp = positive[:, predicted].sum(axis=1), negative[:, predicted].sum(axis=1)
    fn, tn = positive[:, ~predicted].sum(axis=1), negative[:, ~predicted].sum(axis=1)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": (tp + tn) / (tp + fp + fn + tn)}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, numerator / denominator, 0.0)
