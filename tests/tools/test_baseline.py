"""tools/baseline.py: the server's logistic baseline on raw columns, learned on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from tools.baseline import fit_baseline

COLUMNS = (["income", "region", "segment", "flag"], ["region", "segment"])


def frame(rows: int = 300, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({
        "income": rng.normal(50, 12, rows), "region": rng.choice(np.array(["n", "s", None], dtype=object), rows),
        "segment": rng.choice(["retail", "sme"], rows), "flag": rng.random(rows) < 0.3,
    })
    data.loc[rng.random(rows) < 0.1, "income"] = np.nan
    labels = ((data["income"].fillna(50) - 50) / 12 + (data["region"] == "n") + rng.normal(0, 1, rows) > 0.5).astype(int)
    return data, labels.to_numpy()


def test_scores_every_evaluation_row_deterministically_and_learns_the_signal() -> None:
    data, labels = frame()
    rows = (np.arange(0, 200), np.arange(200, 300))
    scores = fit_baseline(data, labels, rows, COLUMNS, seed=1)
    assert scores.shape == (100,) and np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_array_equal(scores, fit_baseline(data, labels, rows, COLUMNS, seed=1))
    assert roc_auc_score(labels[200:], scores) > 0.7


def test_a_row_is_scored_from_its_own_values_with_statistics_of_training_rows_only() -> None:
    data, labels = frame()
    train = np.arange(0, 200)
    alone = fit_baseline(data, labels, (train, np.array([250])), COLUMNS, seed=1)
    changed = data.copy()
    changed.loc[251:, "income"] = 1e9  # other evaluation rows, wildly different: no effect on row 250
    changed.loc[251:, "region"] = "unseen"
    together = fit_baseline(changed, labels, (train, np.arange(250, 300)), COLUMNS, seed=1)
    assert np.isclose(together[0], alone[0], rtol=1e-12) and np.all(np.isfinite(together))
