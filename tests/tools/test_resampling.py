"""Resamples in blocks and the ROC AUC of a whole block at once (tools/resampling.py) are the very
draws and the very floats of the one-resample-at-a-time loop they replace."""

from __future__ import annotations

import numpy as np
import pytest

from tools import resampling
from tools.evaluation import roc_auc
from tools.resampling import resampled_roc_auc, resamples


def one_by_one(seed: int, rows: int, n_samples: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, rows, rows) for _ in range(n_samples)])


@pytest.mark.parametrize("cells", [1, 1000, 2_000_000])
def test_blocks_draw_the_same_resamples_as_one_call_per_resample(cells: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resampling, "BLOCK_CELLS", cells)
    blocks = list(resamples(np.random.default_rng(5), 97, 31))
    assert sum(len(block) for block in blocks) == 31 and (len(blocks) > 1) == (cells < 97 * 31)
    assert np.array_equal(np.concatenate(blocks), one_by_one(5, 97, 31))


@pytest.mark.parametrize(("rows", "positive_rate", "decimals"), [(3, 0.5, None), (40, 0.1, 1), (500, 0.3, None), (500, 0.3, 2), (2000, 0.9, 0)])
def test_the_auc_of_each_resample_equals_roc_auc_of_that_resample_bit_for_bit(rows: int, positive_rate: float, decimals: int | None) -> None:
    rng = np.random.default_rng(rows)
    labels = (rng.random(rows) < positive_rate).astype(np.int64)
    scores = rng.random(rows) if decimals is None else np.round(rng.random(rows), decimals)  # decimals: ties
    block = one_by_one(11, rows, 200)
    expected = [roc_auc(labels[r], scores[r]) for r in block]
    found = resampled_roc_auc(labels, scores, block)
    assert [None if np.isnan(a) else float(a) for a in found] == expected  # == on floats: exact
    assert rows > 3 or None in expected  # the 3-row case draws single-class resamples: NaN there, as roc_auc's None


def test_a_block_too_big_for_memory_is_never_built() -> None:
    blocks = resamples(np.random.default_rng(0), 1_000_000, 1000)
    assert next(blocks).shape == (2, 1_000_000)  # 2 x 10^6 cells, not 10^9
