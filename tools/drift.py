"""Drift baseline (Population Stability Index) recorded with every run.

The baseline is computed on the TRAINING rows and logged as a JSON artifact; monitoring later calls
`psi(feature_baseline, new_values)` per feature. Pure: frames in, plain JSON-able dicts out.

- numeric features: quantile bin edges from the training data (`n_bins` bins, fewer when values
  repeat); bins are (-inf, e1], (e1, e2], ..., (ek, +inf).
- string / boolean / categorical features: the frequency of each category, the `max_categories`
  most frequent kept and the rest pooled as "other"; categories unseen in training count as "other".
- missing values are a bucket of their own in both kinds, so a rise in nulls is drift too.
- datetime columns are skipped: time moves by design, its drift is not a feature's drift.

PSI = sum over buckets of (actual - expected) * ln(actual / expected), each share floored at
PSI_FLOOR so empty buckets stay finite. Common reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tools.errors import InvalidInput

PSI_FLOOR = 1e-4
DEFAULT_BINS = 10
DEFAULT_MAX_CATEGORIES = 50


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _shares(counts: np.ndarray, total: int) -> list[float]:
    return [float(c) / total for c in counts] if total else [0.0] * len(counts)


def _numeric_counts(values: pd.Series, edges: list[float]) -> np.ndarray:
    present = values.dropna().to_numpy(dtype=np.float64)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left")
    return np.bincount(bins, minlength=len(edges) + 1) if present.size else np.zeros(len(edges) + 1, dtype=int)


def numeric_baseline(values: pd.Series, n_bins: int) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype=np.float64)
    quantiles = np.linspace(0, 1, n_bins + 1)[1:-1]
    edges = np.unique(np.quantile(present, quantiles)).tolist() if present.size else []
    total = len(values)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "fractions": _shares(_numeric_counts(values, edges), total),
        "missing_fraction": float(values.isna().sum()) / total if total else 0.0,
    }


def _category_strings(values: pd.Series) -> pd.Series:
    return values.dropna().astype(str)


def categorical_baseline(values: pd.Series, max_categories: int) -> dict[str, Any]:
    counts = _category_strings(values).value_counts()
    # Ties in frequency are broken by name so the kept set does not depend on row order.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
    total = len(values)
    kept = {name: int(count) / total for name, count in ranked}
    return {
        "kind": "categorical",
        "categories": kept,
        "other_fraction": (int(counts.sum()) - sum(int(c) for _, c in ranked)) / total if total else 0.0,
        "missing_fraction": float(values.isna().sum()) / total if total else 0.0,
    }


def drift_baseline(frame: pd.DataFrame, *, n_bins: int = DEFAULT_BINS, max_categories: int = DEFAULT_MAX_CATEGORIES) -> dict[str, Any]:
    """Per-feature PSI baseline of the training rows, as a JSON-able dict."""
    features = {}
    for column in sorted(frame.columns, key=str):
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        features[str(column)] = numeric_baseline(series, n_bins) if _is_numeric(series) else categorical_baseline(series, max_categories)
    return {"method": "psi", "n_bins": n_bins, "max_categories": max_categories, "rows": int(len(frame)), "psi_floor": PSI_FLOOR, "features": features}


def _expected_and_actual(baseline: Mapping[str, Any], values: pd.Series) -> tuple[list[float], list[float]]:
    total = len(values)
    missing = float(values.isna().sum()) / total
    if baseline["kind"] == "numeric":
        actual = _shares(_numeric_counts(values, baseline["edges"]), total)
        return [*baseline["fractions"], baseline["missing_fraction"]], [*actual, missing]
    names = list(baseline["categories"])
    present = _category_strings(values)
    counts = present.value_counts()
    actual = [float(counts.get(name, 0)) / total for name in names]
    other = (len(present) - sum(int(counts.get(name, 0)) for name in names)) / total
    expected = [*baseline["categories"].values(), baseline["other_fraction"], baseline["missing_fraction"]]
    return expected, [*actual, other, missing]


def psi(feature_baseline: Mapping[str, Any], new_values: Any) -> float:
    """Population Stability Index of new values against one feature's baseline.

    Raises InvalidInput when there are no new values or the baseline kind is unknown.
    """
    values = pd.Series(new_values).reset_index(drop=True)
    if values.empty or feature_baseline.get("kind") not in ("numeric", "categorical"):
        raise InvalidInput(
            "psi needs at least one new value and a numeric or categorical baseline",
            "pass the feature's values and its drift baseline entry",
            rule_id="drift.input",
        )
    expected, actual = _expected_and_actual(feature_baseline, values)
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_report(baseline: Mapping[str, Any], frame: pd.DataFrame) -> dict[str, float | None]:
    """PSI per baseline feature; None for a feature the new frame lacks."""
    return {name: (psi(feature, frame[name]) if name in frame.columns else None) for name, feature in sorted(baseline["features"].items())}
