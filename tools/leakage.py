"""Leakage evidence of a run (issue 9 item 7), computed on training rows only (pure).

Before training: the single-feature AUC of every feature against the label, on the rows the folds
train on (never validation-only or test rows). A column that alone separates the classes almost
perfectly (`interest_rate` for a grade model, `recoveries` for a default model) is a proxy of the
label, not a predictor. Numeric columns are ranked as they are (missing values lowest); other
columns are target-encoded out of fold, so an identifier or free text, unique per row, scores near
0.5 instead of a trivial 1.0. AUC is direction-free: max(auc, 1 - auc).

After training: metrics beyond configured plausibility bounds (roc_auc 0.99999 on credit data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tools.evaluation import roc_auc
from tools.metric_names import LOWER_IS_BETTER
from tools.splits import SplitPlan

ENCODING_FOLDS = 5
SHOWN_COLUMNS = 10


def training_rows(plan: SplitPlan) -> np.ndarray:
    """Rows some fold trains on; the held-out test rows and validation-only rows are left out."""
    return np.unique(np.concatenate([fold.train for fold in plan.folds]))


def _direction_free(value: float | None) -> float | None:
    return None if value is None else max(value, 1.0 - value)


def _numeric_auc(values: pd.Series, y: np.ndarray) -> float | None:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(numbers).all():
        return None
    floor = np.nanmin(numbers) - 1.0
    return _direction_free(roc_auc(y, np.where(np.isnan(numbers), floor, numbers)))


def _out_of_fold_encoding(text: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Each row's category scored by its positive rate in the other folds (prior when unseen there)."""
    fold_of = np.random.default_rng(seed).permutation(y.size) % ENCODING_FOLDS
    encoded = np.full(y.size, float(y.mean()))
    for fold in range(ENCODING_FOLDS):
        other = fold_of != fold
        rates = pd.Series(y[other]).groupby(text[other]).mean()
        here = fold_of == fold
        encoded[here] = pd.Series(text[here]).map(rates).fillna(float(y[other].mean())).to_numpy()
    return encoded


def _categorical_auc(values: pd.Series, y: np.ndarray, seed: int) -> float | None:
    text = values.astype("string").fillna("<missing>").str.strip().to_numpy(dtype=object)
    return _direction_free(roc_auc(y, _out_of_fold_encoding(text, y, seed)))


def single_feature_auc(frame: pd.DataFrame, labels: np.ndarray, rows: np.ndarray, columns: Sequence[str], seed: int = 0) -> dict[str, float | None]:
    """{column: direction-free AUC of that column alone against the label on `rows`}; None when the
    rows hold one class or the column has no usable value."""
    y = labels[rows]
    if y.size == 0 or y.min() == y.max():
        return dict.fromkeys(columns)
    subset = frame.iloc[rows]
    found = {}
    for column in columns:
        series = subset[column]
        numeric = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
        found[column] = _numeric_auc(series.astype("float64"), y) if numeric else _categorical_auc(series, y, seed)
    return found


def pre_training(frame: pd.DataFrame, labels: np.ndarray, plan: SplitPlan, features: Sequence[str], settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The leakage section known before training: per-column AUCs (highest first, the top few),
    the columns over `max_single_feature_auc`, and forbidden columns used as features."""
    rows = training_rows(plan)
    aucs = single_feature_auc(frame, labels, rows, list(features), seed)
    bound = float(settings["max_single_feature_auc"])
    ranked = sorted(((c, a) for c, a in aucs.items() if a is not None), key=lambda item: (-item[1], item[0]))
    forbidden = set(settings.get("forbidden_columns") or [])
    return {
        "checked_on": {"rows": int(rows.size), "part": "training folds only"},
        "max_single_feature_auc": bound,
        "single_feature_auc": {c: round(a, 6) for c, a in ranked[:SHOWN_COLUMNS]},
        "suspicious_columns": [c for c, a in ranked if a > bound],
        "forbidden_features": [c for c in features if c in forbidden],
    }


def implausible_metrics(metrics: Mapping[str, float | None], bounds: Mapping[str, float]) -> list[dict[str, Any]]:
    """Metrics beyond their plausibility bound: above it, or below it for losses (log_loss, brier)."""
    found = []
    for metric, bound in sorted(bounds.items()):
        value = metrics.get(metric)
        if value is not None and (value < bound if metric in LOWER_IS_BETTER else value > bound):
            found.append({"metric": metric, "value": value, "bound": bound})
    return found


def after_training(section: Mapping[str, Any], metrics: Mapping[str, float | None], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The leakage section completed with the run's implausible metrics and the verdict `flagged`."""
    implausible = implausible_metrics(metrics, settings.get("implausible_metrics") or {})
    flagged = bool(section.get("suspicious_columns") or section.get("forbidden_features") or implausible)
    return {**section, "implausible_metrics": implausible, "flagged": flagged, "action": settings.get("action")}
