"""Resamples in blocks and every metric of a whole block at once (tools/resampling.py) are the very
draws and the very floats of the one-resample-at-a-time loop they replace."""

from __future__ import annotations

import numpy as np
import pytest

from tools import resampling
from tools.evaluation import LOG_LOSS_EPS, compute_metrics
from tools.metric_names import METRICS
from tools.resampling import block_metrics, resamples, scored


def one_by_one(seed: int, rows: int, n_samples: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, rows, rows) for _ in range(n_samples)])


@pytest.mark.parametrize("cells", [1, 1000, 2_000_000])
def test_blocks_draw_the_same_resamples_as_one_call_per_resample(cells: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resampling, "BLOCK_CELLS", cells)
    blocks = list(resamples(np.random.default_rng(5), 97, 31))
    assert sum(len(block) for block in blocks) == 31 and (len(blocks) > 1) == (cells < 97 * 31)
    assert np.array_equal(np.concatenate(blocks), one_by_one(5, 97, 31))


@pytest.mark.parametrize(("rows", "positive_rate", "decimals"), [(3, 0.5, None), (40, 0.1, 1), (500, 0.3, None), (500, 0.3, 2), (2000, 0.9, 0), (20_000, 0.2, 3)])
def test_every_metric_of_each_resample_equals_compute_metrics_of_that_resample_bit_for_bit(rows: int, positive_rate: float, decimals: int | None) -> None:
    rng = np.random.default_rng(rows)
    labels = (rng.random(rows) < positive_rate).astype(np.int8)
    scores = rng.random(rows) if decimals is None else np.round(rng.random(rows), decimals)  # decimals: ties
    scores[: rows // 4] = 0.5  # rows exactly at the threshold
    block = one_by_one(11, rows, 60 if rows > 5000 else 200)
    found = block_metrics(scored(labels, scores, 0.5, LOG_LOSS_EPS), block, METRICS)
    for r, rows_drawn in enumerate(block):
        expected = compute_metrics(labels[rows_drawn], scores[rows_drawn])
        assert bool(found["both_classes"][r]) == (expected["roc_auc"] is not None)
        if expected["roc_auc"] is not None:
            assert {m: float(found[m][r]) for m in METRICS} == expected  # == on floats: exact
    assert rows > 3 or not found["both_classes"].all()  # the 3-row case draws single-class resamples


def test_only_the_metrics_asked_for_are_computed() -> None:
    labels, scores = np.array([0, 1, 1, 0], dtype=np.int8), np.array([0.1, 0.8, 0.4, 0.6])
    found = block_metrics(scored(labels, scores, 0.5, LOG_LOSS_EPS), one_by_one(2, 4, 5), ("brier",))
    assert set(found) == {"both_classes", "brier"}


def test_a_block_too_big_for_the_caches_holds_one_resample() -> None:
    blocks = resamples(np.random.default_rng(0), 1_000_000, 1000)
    assert next(blocks).shape == (1, 1_000_000)  # one resample's draws, not 10^9 cells
    assert next(resamples(np.random.default_rng(0), 2_000, 1000)).shape == (resampling.BLOCK_CELLS // 2_000, 2_000)
