"""Bootstrap resamples in blocks, and the ROC AUC of many resamples at once.

A resample loop that ranks every resample's scores (scipy's rankdata, one sort per resample) took
most of the server's own time in run_experiment: about 0.6 s per 500 resamples of 2 000 rows, run
for the intervals of two sections and for every paired comparison. Here a resample is a row of
counts over the original rows, the rows are sorted once, and the Mann-Whitney count of every
resample in a block comes from cumulative sums over the tie groups.

Exact, not approximate: each resample's count of (positive, negative) pairs ordered right, ties
counting one half, is a sum of integers and halves below 2**53, so float64 holds it exactly, and it
is the very numerator `roc_auc` gets from its rank sum; divided by the same product of class sizes,
the result is the same float, bit for bit. Pure: arrays in, arrays out.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK_CELLS = 2_000_000  # resamples x rows per block: a few 16 MB matrices whatever the row count


def resamples(rng: np.random.Generator, rows: int, n_samples: int) -> Iterator[np.ndarray]:
    """Blocks of row indices, one resample per matrix row: the very draws of `n_samples` calls of
    `rng.integers(0, rows, rows)` in turn (the generator's stream does not depend on the blocking)."""
    block = max(1, BLOCK_CELLS // max(rows, 1))
    for start in range(0, int(n_samples), block):
        yield rng.integers(0, rows, (min(block, int(n_samples) - start), rows))


def resampled_roc_auc(labels: np.ndarray, scores: np.ndarray, block: np.ndarray) -> np.ndarray:
    """ROC AUC of each resample of `block` (row indices into labels/scores); NaN where a resample
    holds a single class. Equal to tools.evaluation.roc_auc(labels[r], scores[r]) for every row r."""
    order = np.argsort(scores, kind="mergesort")
    starts = np.r_[0, np.flatnonzero(np.diff(scores[order])) + 1]  # first row of each group of tied scores
    weights = _counts(block, labels.size)[:, order]
    positive = np.add.reduceat(weights * labels[order], starts, axis=1)
    negative = np.add.reduceat(weights * (1 - labels[order]), starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative  # negatives scored lower than each group
    pairs = np.sum(positive * (below + 0.5 * negative), axis=1)
    n_pos, n_neg = positive.sum(axis=1), negative.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), pairs / (n_pos * n_neg), np.nan)


def _counts(block: np.ndarray, rows: int) -> np.ndarray:
    """How often each original row is drawn in each resample, as float64 (exact integers)."""
    offsets = block + rows * np.arange(block.shape[0])[:, None]
    return np.bincount(offsets.ravel(), minlength=block.shape[0] * rows).reshape(block.shape[0], rows).astype(np.float64)
