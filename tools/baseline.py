"""The logistic-regression baseline, fitted in the server process on the raw dataset columns.

The lift gate compares the candidate with this baseline, so it must be out of reach of the code
the gate judges: the training child imports the agent-edited src/features.py, which could rewrite
anything that child writes. The baseline therefore never runs features.py and never runs in a
child: it sees the run's feature columns as they are in the dataset, through a fixed preprocessing
owned by the server (median imputation and standardisation of numbers; one-hot categories learned
on the training rows, the most frequent MAX_CATEGORIES per column, unseen ones as all zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

MAX_CATEGORIES = 50
MAX_ITER = 1000
MISSING = "<missing>"


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as float64, infinities as missing."""
    return frame.apply(pd.to_numeric, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)


def _labels(series: pd.Series) -> np.ndarray:
    """A categorical column as text, missing values as their own category."""
    return series.astype("object").where(series.notna(), MISSING).astype(str).to_numpy()


@dataclass(frozen=True)
class Encoding:
    """The fixed preprocessing, learned on training rows only."""

    numeric: list[str]
    medians: pd.Series
    means: pd.Series
    stds: pd.Series
    categories: dict[str, np.ndarray]

    @classmethod
    def fit(cls, train: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Encoding:
        numbers = _numbers(train[numeric])
        medians = numbers.median().fillna(0.0)
        filled = numbers.fillna(medians)
        stds = filled.std(ddof=0).fillna(0.0)
        return cls(numeric, medians, filled.mean(), stds.where(stds > 0, 1.0), {c: _top_categories(train[c]) for c in categorical})

    def transform(self, frame: pd.DataFrame) -> sparse.csr_matrix:
        """Sparse, so wide one-hot blocks of a large dataset stay small in the server's memory."""
        numbers = ((_numbers(frame[self.numeric]).fillna(self.medians) - self.means) / self.stds).to_numpy()
        blocks = [sparse.csr_matrix(numbers.reshape(len(frame), len(self.numeric)))]
        blocks += [_one_hot(_labels(frame[c]), known) for c, known in self.categories.items()]
        return sparse.hstack(blocks, format="csr", dtype="float64")


def _one_hot(labels: np.ndarray, known: np.ndarray) -> sparse.csr_matrix:
    """One column per known category; an unseen category is a row of zeros."""
    index = pd.Index(known).get_indexer(labels)
    rows = np.flatnonzero(index >= 0)
    return sparse.csr_matrix((np.ones(len(rows)), (rows, index[rows])), shape=(len(labels), len(known)))


def _top_categories(series: pd.Series) -> np.ndarray:
    """The MAX_CATEGORIES most frequent labels (ties by label, so the choice is deterministic)."""
    counts = pd.Series(_labels(series)).value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return np.array([label for label, _ in ranked[:MAX_CATEGORIES]], dtype=object)


def fit_baseline(
    frame: pd.DataFrame, labels: np.ndarray, rows: tuple[np.ndarray, np.ndarray],
    columns: tuple[list[str], list[str]], seed: int,
) -> np.ndarray:
    """P(label = 1) for the evaluation rows of `rows` = (train, evaluate) positions, from an L2
    logistic regression (lbfgs, C=1) fitted on the training rows only. `columns` = (feature
    columns, the categorical ones among them)."""
    train, evaluate = rows
    features, categorical = columns
    encoding = Encoding.fit(frame.iloc[train], [c for c in features if c not in categorical], [c for c in features if c in categorical])
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - deferred: a slow import kept off server start (bench.cold_start)

    model = LogisticRegression(solver="lbfgs", max_iter=MAX_ITER, random_state=seed)
    model.fit(encoding.transform(frame.iloc[train]), labels[train])
    return model.predict_proba(encoding.transform(frame.iloc[evaluate]))[:, 1].astype("float64")
