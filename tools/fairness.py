"""Fairness slices of a run (issue 9 item 9): numeric protected attributes are binned, small slices
are reported as insufficient, each slice's selection rate is compared with the most favoured one.

Pure: frames and arrays in, plain dicts out. Settings come from the standards' `fairness` section,
falling back to configs/policy.yaml `fairness`:

    bins:            {attribute: [edge, ...]}   explicit bin edges of a numeric attribute
    min_slice_size:  slices with fewer test rows get no metrics ("insufficient")
    default_bins:    quantile bins for a numeric attribute without explicit edges
    max_levels_unbinned: a numeric attribute with at most this many distinct values is sliced per value

A protected attribute is found in the frame by policies/data.py column_key, as feature selection
excludes it: `Ｇｅｎｄｅｒ` or `gen\u200bder` in the data is sliced as the standards' `gender`. Its
slices are keyed by the standards' name, and carry `column` (the dataset column sliced) when that
is spelled otherwise. Of several columns with the attribute's key, the exact spelling is sliced,
else the first in dataset order, and `other_columns` names the rest (tools/columns.py warns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from policies.data import named_columns
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


def _spelling(name: str, columns: list[str]) -> dict[str, Any]:
    """What a slice says of the dataset column(s) behind a protected attribute, beyond its name."""
    spelled = {"column": columns[0]} if columns[0] != name else {}
    return spelled | ({"other_columns": columns[1:]} if len(columns) > 1 else {})


def _attribute(frame: pd.DataFrame, rows: np.ndarray, name: str, settings: Mapping[str, Any]) -> tuple[np.ndarray, list[float] | None, dict[str, Any]] | None:
    """(slice value of each evaluated row, bin edges, spelling) of one attribute; None when absent."""
    columns = named_columns(frame.columns, name)
    if not columns:
        return None
    found = frame[{str(c): c for c in frame.columns}[columns[0]]]  # named_columns answers in text; a frame may label by number
    edges = attribute_edges(found, name, settings)
    column = found.iloc[rows].reset_index(drop=True)
    return bin_values(column, edges) if edges is not None else column.to_numpy(), edges, _spelling(name, columns)


def fairness_slices(frame: pd.DataFrame, rows: np.ndarray, labels: np.ndarray, scores: np.ndarray, attributes: Sequence[str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Slice metrics on the evaluated `rows` for each protected attribute present in `frame` (by
    column_key), plus `{binning: {attribute: edges or None}, min_slice_size}` and the spelling of
    its column (module docstring). Raises InvalidInput on mismatched lengths."""
    found = {name: a for name in map(str, attributes) if (a := _attribute(frame, rows, name, settings)) is not None}
    min_size = int(settings.get("min_slice_size", 1))
    sliced = slice_metrics(labels, scores, {n: a[0] for n, a in found.items()}, min_slice_size=min_size) if found else {}
    return {name: {**report, "bins": found[name][1], **found[name][2]} for name, report in sliced.items()}
