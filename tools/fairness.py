"""Fairness slices of a run (issue 9 item 9): numeric protected attributes are binned, small slices
are reported as insufficient, each slice's selection rate is compared with the most favoured one.

Pure: frames and arrays in, plain dicts out. Settings come from the standards' `fairness` section,
falling back to configs/policy.yaml `fairness`:

    bins:            {attribute: [edge, ...]}   explicit bin edges of a numeric attribute
    min_slice_size:  slices with fewer test rows get no metrics ("insufficient")
    default_bins:    quantile bins for a numeric attribute without explicit edges
    max_levels_unbinned: a numeric attribute with at most this many distinct values is sliced per value
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tools.evaluation import MISSING_SLICE, slice_metrics


def fairness_settings(standards: Mapping[str, Any], policy: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's fairness defaults overlaid with the standards' own `fairness` section."""
    return {**(policy.get("fairness") or {}), **(standards.get("fairness") or {})}


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def default_edges(series: pd.Series, bins: int) -> list[float]:
    """Inner edges of `bins` quantile bins of the column's non-missing values (all rows, no labels),
    rounded to whole numbers when the values are whole; duplicates dropped."""
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if values.size == 0 or bins < 2:
        return []
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    if np.all(values == np.round(values)):
        edges = np.round(edges)
    return sorted({float(e) for e in edges if values.min() < e <= values.max()})


def _label(low: float | None, high: float | None) -> str:
    if low is None:
        return f"< {high:g}"
    if high is None:
        return f">= {low:g}"
    return f"[{low:g}, {high:g})"


def bin_values(series: pd.Series, edges: Sequence[float]) -> np.ndarray:
    """Each value's bin label ("< 30", "[30, 45)", ">= 45"); missing or non-numeric values "<missing>"."""
    ordered = sorted(float(e) for e in edges)
    bounds = [None, *ordered, None]
    labels = [_label(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    positions = np.searchsorted(np.asarray(ordered), values, side="right")
    return np.asarray([MISSING_SLICE if np.isnan(v) else labels[i] for v, i in zip(values, positions)], dtype=object)


def attribute_edges(column: pd.Series, name: str, settings: Mapping[str, Any]) -> list[float] | None:
    """Bin edges for one attribute (over all rows), or None when it is sliced per value."""
    explicit = (settings.get("bins") or {}).get(name)
    if explicit:
        return sorted(float(e) for e in explicit)
    if not _is_numeric(column) or column.nunique(dropna=True) <= int(settings.get("max_levels_unbinned", 10)):
        return None
    return default_edges(column, int(settings.get("default_bins", 5)))


def fairness_slices(frame: pd.DataFrame, rows: np.ndarray, labels: np.ndarray, scores: np.ndarray, attributes: Sequence[str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Slice metrics on the evaluated `rows` for each protected attribute present in `frame`, plus
    `{binning: {attribute: edges or None}, min_slice_size}`. Raises InvalidInput on mismatched lengths."""
    values, binning = {}, {}
    for name in attributes:
        if name not in frame.columns:
            continue
        edges = attribute_edges(frame[name], name, settings)
        column = frame[name].iloc[rows].reset_index(drop=True)
        values[name] = bin_values(column, edges) if edges is not None else column.to_numpy()
        binning[name] = edges
    min_size = int(settings.get("min_slice_size", 1))
    sliced = slice_metrics(labels, scores, values, min_slice_size=min_size) if values else {}
    return {name: {**report, "bins": binning[name]} for name, report in sliced.items()}
