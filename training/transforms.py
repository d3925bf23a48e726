"""The workspace's build_features and the feature transform fitted on training rows only.

build_features runs separately on training and evaluation rows. Everything learned from data
(medians, means, category lists) is fitted here on the training output alone and then applied
unchanged to evaluation rows, so no statistic of an evaluation row can leak into the model.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.errors import FeatureError

MISSING_CATEGORY = "<missing>"
BuildFeatures = Callable[[pd.DataFrame], pd.DataFrame]


def load_build_features(path: Path) -> BuildFeatures:
    """Import the workspace features.py from its file path; raises FeatureError without build_features."""
    module_spec = importlib.util.spec_from_file_location("workspace_features", path)
    if module_spec is None or module_spec.loader is None:
        raise FeatureError("features.py could not be loaded as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    build = getattr(module, "build_features", None)
    if not callable(build):
        raise FeatureError("features.py must define build_features(frame) -> DataFrame", "build_features_missing")
    return build


def takes_context(build: Callable[..., Any]) -> bool:
    """Whether build_features is written `build_features(frame, context)`: only then does it get the
    context columns, so a features.py written for the feature columns alone sees exactly those."""
    try:
        parameters = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def apply_build_features(build: Callable[..., Any], frame: pd.DataFrame, which: str, context: pd.DataFrame | None = None) -> pd.DataFrame:
    """Run build_features on a copy (with a copy of `context` when it takes one) and check its
    output; raises FeatureError."""
    built = build(frame.copy(), context.copy()) if context is not None and takes_context(build) else build(frame.copy())
    return check_built(built, len(frame), which)


def check_built(built: object, n_rows: int, which: str) -> pd.DataFrame:
    """build_features' output checked: a frame of n_rows rows and unique string column names. The fit
    stage checks the features stage's Parquet frames again: that process could skip its own check."""
    if not isinstance(built, pd.DataFrame):
        raise FeatureError(f"build_features returned {type(built).__name__} for {which} rows, not a DataFrame", "features_not_frame")
    if len(built) != n_rows:
        raise FeatureError(f"build_features returned {len(built)} rows for {n_rows} {which} rows", "features_row_count")
    if built.shape[1] == 0:
        raise FeatureError(f"build_features returned no columns for {which} rows", "features_no_columns")
    if not all(isinstance(name, str) for name in built.columns) or built.columns.has_duplicates:
        raise FeatureError("build_features must return unique string column names", "features_column_names")
    return built.reset_index(drop=True)


def without_context(built: pd.DataFrame, context: list[str], which: str) -> pd.DataFrame:
    """build_features' output without a column named as a context column (never a feature, even
    copied into the output); raises FeatureError when nothing else is left."""
    kept = built.drop(columns=[c for c in context if c in built.columns])
    if kept.shape[1] == 0:
        raise FeatureError(f"build_features returned only context columns ({', '.join(context)}) for {which} rows, which are never features", "features_no_columns")
    return kept


def kept_dtype(declared: tuple[str, ...], raw: pd.DataFrame, built: pd.DataFrame) -> tuple[str, ...]:
    """The declared categories build_features left with the dtype they came in. One it changed
    (text amounts parsed into numbers, dates turned into days) is encoded as its new dtype says:
    else the parse would be undone, one category per amount."""
    return tuple(c for c in declared if c not in raw.columns or c not in built.columns or built[c].dtype == raw[c].dtype)


def _is_categorical(series: pd.Series, declared: frozenset[str]) -> bool:
    if series.name in declared:
        return True
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return False
    if pd.api.types.is_datetime64_any_dtype(series):
        return False
    return True


def _as_float(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        seconds = series.astype("datetime64[ns]").astype("int64") / 1e9
        values = np.where(series.isna(), np.nan, seconds)
    else:
        values = pd.to_numeric(series, errors="raise").astype("float64").to_numpy()
    values = np.array(values, dtype="float64")  # a copy: pandas may hand out read-only views
    values[~np.isfinite(values)] = np.nan
    return values


def _as_category_labels(series: pd.Series) -> np.ndarray:
    labels = series.astype("object").where(series.notna(), MISSING_CATEGORY)
    return labels.map(str).to_numpy()


@dataclass(frozen=True)
class NumericStats:
    median: float
    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> NumericStats:
        present = values[~np.isnan(values)]
        median = float(np.median(present)) if present.size else 0.0
        imputed = np.where(np.isnan(values), median, values)
        std = float(imputed.std())
        return cls(median=median, mean=float(imputed.mean()), std=std if std > 0 else 1.0)

    def apply(self, values: np.ndarray) -> np.ndarray:
        return (np.where(np.isnan(values), self.median, values) - self.mean) / self.std


@dataclass(frozen=True)
class FeatureTransform:
    """Median imputation + standardisation for numbers, one-hot for categories (unknown: all zeros)."""

    numeric: dict[str, NumericStats] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, train: pd.DataFrame, declared_categorical: tuple[str, ...], max_categories: int) -> FeatureTransform:
        declared = frozenset(declared_categorical)
        numeric, categories = {}, {}
        for name in train.columns:
            series = train[name]
            if _is_categorical(series, declared):
                counts = pd.Series(_as_category_labels(series)).value_counts()
                ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                categories[name] = [label for label, _ in ranked[:max_categories]]
            else:
                numeric[name] = NumericStats.fit(_as_float_checked(series))
        return cls(numeric=numeric, categories=categories, columns=list(train.columns))

    def transform(self, frame: pd.DataFrame, which: str) -> np.ndarray:
        missing = [name for name in self.columns if name not in frame.columns]
        if missing:
            raise FeatureError(f"build_features output for {which} rows lacks columns {missing[:10]}", "features_columns_missing")
        blocks = [self._encode(name, frame[name]) for name in self.columns]
        return np.column_stack(blocks).astype("float32")

    def _encode(self, name: str, series: pd.Series) -> np.ndarray:
        if name in self.numeric:
            return self.numeric[name].apply(_as_float_checked(series))[:, None]
        labels = _as_category_labels(series)
        return np.stack([labels == category for category in self.categories[name]], axis=1).astype("float32")

    @property
    def feature_names(self) -> list[str]:
        names = []
        for name in self.columns:
            names.extend([name] if name in self.numeric else [f"{name}={c}" for c in self.categories[name]])
        return names

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> FeatureTransform:
        """The transform to_json wrote (a trained model's feature_transform.json); raises
        FeatureError when it is not one."""
        try:
            numeric = {str(n): NumericStats(float(s["median"]), float(s["mean"]), float(s["std"])) for n, s in document["numeric"].items()}
            categories = {str(n): [str(c) for c in labels] for n, labels in document["categories"].items()}
            columns = [str(c) for c in document["columns"]]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise FeatureError("feature_transform.json is not a feature transform", "model_unreadable") from exc
        if set(columns) != set(numeric) | set(categories) or len(set(columns)) != len(columns):
            raise FeatureError("feature_transform.json names other columns than it encodes", "model_unreadable")
        return cls(numeric=numeric, categories=categories, columns=columns)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "numeric": {name: vars(stats) for name, stats in self.numeric.items()},
            "categories": self.categories,
            "missing_category": MISSING_CATEGORY,
            "unknown_category": "all indicator columns zero",
        }


def _as_float_checked(series: pd.Series) -> np.ndarray:
    try:
        return _as_float(series)
    except (TypeError, ValueError) as exc:
        raise FeatureError(f"column {series.name!r} is neither numeric nor categorical", "features_column_type") from exc
