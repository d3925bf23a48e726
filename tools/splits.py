"""The server-owned data split (DESIGN §5): which rows train, which validate, which are held out.

Pure: frames and labels in, positional index arrays out (row i of the frame as given, 0-based,
sorted ascending). Nothing here reads files, the clock or the environment, so the same frame,
labels, config and seed always give the same plan, and the plan's `split_sha256` lets anyone check
that a logged split is the one that was used.

Strategies (names as in standards `allowed.split_strategies`):
- stratified_kfold: a stratified final test set of `test_size` is carved out first and never used
  for training or model selection; the rest is cut into `n_splits` stratified folds.
- temporal_split: rows ordered by the standards' time column; train < validation < test in time,
  windows given as fractions (`validation_size`, `test_size`) or as date bounds (`train_end`,
  `validation_end`, both inclusive upper bounds). Ties in time never straddle two windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tools.errors import IntegrityError, InvalidInput
from tools.labels import binary_labels

WINDOWS = ("train", "validation", "test")
WINDOW_KEYS = ("train_end", "validation_end", "validation_size", "test_size")


@dataclass(frozen=True)
class Fold:
    """Positional indices of one fold: the child trains on `train`, is scored on `validation`."""

    train: np.ndarray
    validation: np.ndarray


@dataclass(frozen=True)
class SplitPlan:
    """A complete split. `test` is the final held-out set: its labels never leave the server."""

    strategy: str
    folds: list[Fold]
    test: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def split_sha256(self) -> str:
        return self.description["split_sha256"]


def _hash_indices(arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        data = np.ascontiguousarray(array, dtype="<i8").tobytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _part(indices: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    part: dict[str, Any] = {"rows": int(indices.size)}
    if labels is not None and indices.size:
        part["positive_rate"] = round(float(labels[indices].mean()), 6)
        part["positives"] = int(labels[indices].sum())
    return part


def realised_fractions(folds: list[Fold], test: np.ndarray, rows: int) -> dict[str, float]:
    """Shares of all rows that train, validate (mean over folds) and test: what the split really made."""
    if rows <= 0:
        return {"train": 0.0, "validation": 0.0, "test": 0.0}
    return {
        "train": _mean_share([f.train.size for f in folds], rows),
        "validation": _mean_share([f.validation.size for f in folds], rows),
        "test": round(test.size / rows, 6),
    }


def _mean_share(sizes: list[int], rows: int) -> float:
    return round(float(np.mean(sizes)) / rows, 6) if sizes else 0.0


def _describe(strategy: str, folds: list[Fold], test: np.ndarray, labels: np.ndarray | None, extra: dict[str, Any]) -> dict[str, Any]:
    arrays = [a for f in folds for a in (f.train, f.validation)] + [test]
    rows = int(extra.get("rows") or (labels.size if labels is not None else 0))
    return {
        "strategy": strategy,
        "fractions": realised_fractions(folds, test, rows),
        "folds": [{"train": _part(f.train, labels), "validation": _part(f.validation, labels)} for f in folds],
        "test": _part(test, labels),
        "split_sha256": _hash_indices(arrays),
        **extra,
    }


def _sorted(indices: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(indices, dtype=np.int64))


def _check_fractions(test_size: float, n_splits: int) -> None:
    if not 0.0 < test_size < 1.0:
        raise InvalidInput(f"split.test_size must be between 0 and 1, got {test_size}", "use the standards' split.test_size", rule_id="split.config")
    if n_splits < 2:
        raise InvalidInput(f"split.n_splits must be at least 2, got {n_splits}", "set split.n_splits to 2 or more", rule_id="split.config")


def _check_class_counts(labels: np.ndarray, test_size: float, n_splits: int) -> None:
    minority = int(min(labels.sum(), labels.size - labels.sum()))
    needed = n_splits + max(1, int(np.ceil(minority * test_size)))
    if minority < needed or minority * test_size < 1:
        raise InvalidInput(
            f"the minority class has {minority} rows: too few for a stratified test set of {test_size} and {n_splits} folds",
            "use fewer folds (split.n_splits) or a dataset with more minority-class rows",
            rule_id="split.class_counts",
        )


def stratified_kfold(labels: Any, *, n_splits: int, test_size: float, seed: int) -> SplitPlan:
    """Stratified held-out test set, then `n_splits` stratified folds over the remaining rows.

    Raises InvalidInput on non-binary labels, bad fractions or too few minority-class rows.
    """
    y = binary_labels(labels)
    _check_fractions(test_size, n_splits)
    _check_class_counts(y, test_size, n_splits)
    positions = np.arange(y.size)
    from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: PLC0415 - deferred: a slow import kept off server start (bench.cold_start)

    rest, test = train_test_split(positions, test_size=test_size, stratify=y, random_state=seed)
    rest = _sorted(rest)
    folder = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = [Fold(_sorted(rest[tr]), _sorted(rest[va])) for tr, va in folder.split(rest, y[rest])]
    extra = {"seed": seed, "n_splits": n_splits, "test_size": test_size, "rows": int(y.size)}
    return SplitPlan("stratified_kfold", folds, _sorted(test), _describe("stratified_kfold", folds, _sorted(test), y, extra))


def time_values(frame: pd.DataFrame, time_column: str) -> pd.Series:
    """The time column as datetimes (or numbers for an ordinal time). Raises InvalidInput when the
    column is missing or any value is missing or unparsable."""
    if time_column not in frame.columns:
        raise InvalidInput(
            f"temporal_split needs the time column {time_column!r} named in the standards, and the dataset has no such column",
            "use a dataset with that column, or split.strategy: stratified_kfold",
            rule_id="split.time_column",
        )
    raw = frame[time_column].reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        parsed = raw.astype("float64")
    else:
        parsed = _parse_times(raw)
    bad = int(parsed.isna().sum())
    if bad:
        raise InvalidInput(
            f"time column {time_column!r} has {bad} missing or unparsable values (of {len(raw)})",
            "temporal_split cannot place rows without a time: an operator imports a dataset version with those rows fixed or dropped, "
            "then data.dataset is pointed at it",
            rule_id="split.time_column",
        )
    return parsed


# Month-only forms (loan books: "Mar-2018", "2018-03") parse to the first of the month with one
# explicit format, never by per-value guessing.
MONTH_FORMATS = ("%b-%Y", "%B-%Y", "%b %Y", "%B %Y", "%Y-%m", "%m/%Y")
MONTH_SAMPLE = 100  # values tried with a month format before the whole column: most columns fail at once


# Numeric day/month dates (13/02/2020, 02.13.2020, 1-2-20): which field is the day is decided once
# for the whole column from its values, never per value (pandas' mixed parsing read 01/02/2020 as
# 2 January and 13/02/2020 as 13 February in one column, scrambling the temporal order).
NUMERIC_DATE = r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.\-])"
TIME_SUFFIXES = ("", " %H:%M", " %H:%M:%S", "T%H:%M:%S", "T%H:%M")  # tried as explicit formats first: per-value parsing is slow
ISO_HINT = "an operator imports a dataset version whose time column is ISO 8601 (2020-02-13), then data.dataset is pointed at it"


def _parse_times(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.to_datetime(raw, utc=True)  # already times (Parquet): nothing to read from text
    text = raw.dropna().astype(str).str.strip()
    for month_format in MONTH_FORMATS:
        if len(text) and _all_parse(text.head(MONTH_SAMPLE), month_format) and _all_parse(text, month_format):
            return pd.to_datetime(raw.astype("string").str.strip(), errors="coerce", utc=True, format=month_format)
    fields = text.str.extract(NUMERIC_DATE)
    day_first = _day_first(text, fields)
    for numeric_format in _numeric_formats(fields, day_first):
        if _all_parse(text.head(MONTH_SAMPLE), numeric_format) and _all_parse(text, numeric_format):
            return pd.to_datetime(raw.astype("string").str.strip(), errors="coerce", utc=True, format=numeric_format)
    return pd.to_datetime(raw, errors="coerce", utc=True, format="mixed", dayfirst=bool(day_first))


def _day_first(text: pd.Series, fields: pd.DataFrame) -> bool | None:
    """For a column of numeric day/month dates (`fields`: NUMERIC_DATE's groups per value): True
    when the day comes first, False when the month does; None when the column holds no such date.
    Raises InvalidInput when its values read both ways (every field 12 or less), neither way, or
    only some values are such dates."""
    numeric = fields[0].notna()
    if not numeric.any():
        return None
    if not numeric.all():
        raise InvalidInput(f"the time column mixes numeric day/month dates ({text[numeric].iloc[0]!r}) with other forms ({text[~numeric].iloc[0]!r})", ISO_HINT, rule_id="split.time_column")
    first, second = fields[0].astype(int), fields[2].astype(int)
    day_first, month_first = bool((second <= 12).all()), bool((first <= 12).all())
    if day_first == month_first:
        problem = "every value reads both as day/month and as month/day" if day_first else "no value order fits day/month or month/day throughout"
        raise InvalidInput(f"the time column's dates are ambiguous: {problem} (e.g. {text.iloc[0]!r})", ISO_HINT, rule_id="split.time_column")
    return day_first


def _numeric_formats(fields: pd.DataFrame, day_first: bool | None) -> list[str]:
    """Explicit formats for numeric day/month dates in the order found, with the first value's
    separator and year length (a column that varies falls back to per-value parsing, same order)."""
    if day_first is None:
        return []
    separator, year = fields[1].iloc[0], "%Y" if len(fields[3].iloc[0]) == 4 else "%y"
    date = separator.join(["%d", "%m"] if day_first else ["%m", "%d"]) + separator + year
    return [date + suffix for suffix in TIME_SUFFIXES]


def _all_parse(text: pd.Series, date_format: str) -> bool:
    return bool(pd.to_datetime(text, errors="coerce", format=date_format).notna().all())


def _bound(value: Any, times: pd.Series, name: str) -> Any:
    if pd.api.types.is_numeric_dtype(times):
        return float(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InvalidInput(f"split.{name} {value!r} is not a date", f"give split.{name} as YYYY-MM-DD", rule_id="split.config")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _cuts_from_bounds(times: pd.Series, config: Mapping[str, Any]) -> tuple[Any, Any]:
    """Rows with time <= train_end train; <= validation_end validate; later rows are the test."""
    train_end, validation_end = _bound(config["train_end"], times, "train_end"), _bound(config["validation_end"], times, "validation_end")
    if not train_end < validation_end:
        raise InvalidInput("split.train_end must be before split.validation_end", "order the window bounds in time", rule_id="split.config")
    return times[times > train_end].min(), times[times > validation_end].min()


def _cuts_from_fractions(times: pd.Series, config: Mapping[str, Any]) -> tuple[Any, Any]:
    """The latest `test_size` rows test, the `validation_size` before them validate. A cut lands on
    the first row of its time value, so equal times stay in the later window."""
    test_size, validation_size = float(config.get("test_size", 0.2)), float(config.get("validation_size", config.get("test_size", 0.2)))
    if not (0 < test_size < 1 and 0 < validation_size < 1 and test_size + validation_size < 1):
        raise InvalidInput(
            f"temporal windows need 0 < validation_size, test_size and their sum < 1 (got {validation_size}, {test_size})",
            "adjust split.validation_size", rule_id="split.config",
        )
    ordered = times.sort_values(kind="mergesort").reset_index(drop=True)
    n = len(ordered)
    return _nearest_cut(ordered, n * (1 - test_size - validation_size)), _nearest_cut(ordered, n * (1 - test_size))


def _nearest_cut(ordered: pd.Series, target: float) -> Any:
    """The first time of the later window: the start or the end of the group of equal times the
    target position falls in, whichever leaves the window sizes nearer the asked fractions (ties
    keep the start). Monthly data would otherwise push a whole month into the later window."""
    n = len(ordered)
    position = min(n - 1, int(round(target)))
    value = ordered.iloc[position]
    start = int(ordered.searchsorted(value, side="left"))
    end = int(ordered.searchsorted(value, side="right"))
    if end < n and abs(end - target) < abs(start - target):
        return ordered.iloc[end]
    return value


def _window_masks(times: pd.Series, validation_start: Any, test_start: Any) -> dict[str, np.ndarray]:
    # NaN / NaT cuts (no row after a bound) compare False everywhere: the window comes out empty.
    is_test = (times >= test_start).to_numpy() if pd.notna(test_start) else np.zeros(len(times), bool)
    is_validation = ((times >= validation_start).to_numpy() if pd.notna(validation_start) else np.zeros(len(times), bool)) & ~is_test
    return {"train": ~is_validation & ~is_test, "validation": is_validation, "test": is_test}


def check_temporal_order(times: pd.Series, plan: SplitPlan) -> None:
    """Raises IntegrityError unless every fold's train rows are strictly earlier than its
    validation rows, and those strictly earlier than every test row."""
    for fold in plan.folds:
        windows = [fold.train, fold.validation, plan.test]
        for earlier, later in zip(windows, windows[1:]):
            if times.iloc[earlier].max() >= times.iloc[later].min():
                raise IntegrityError(
                    "temporal split leaks: a later window has rows at or before an earlier one",
                    "report this as a bug; no run was started on this split",
                    rule_id="split.temporal_order",
                )


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, pd.Timestamp) else float(value)


def temporal_split(frame: pd.DataFrame, *, time_column: str, windows: Mapping[str, Any], labels: Any = None) -> SplitPlan:
    """Train / validation / test by time (one fold). `windows` holds either `train_end` and
    `validation_end`, or `test_size` and optionally `validation_size` (defaults to test_size).

    Raises InvalidInput on a missing/unparsable time column, bad bounds or an empty window.
    """
    times = time_values(frame, time_column)
    use_bounds = "train_end" in windows or "validation_end" in windows
    cut = _cuts_from_bounds if use_bounds else _cuts_from_fractions
    masks = _window_masks(times, *cut(times, windows))
    for name in WINDOWS:
        if not masks[name].any():
            raise InvalidInput(f"temporal window {name!r} is empty", "move the window bounds so that every window has rows", rule_id="split.window_empty")
    train, validation, test = (np.flatnonzero(masks[name]) for name in WINDOWS)
    y = binary_labels(labels) if labels is not None else None
    ranges = {name: [_iso(times[masks[name]].min()), _iso(times[masks[name]].max())] for name in WINDOWS}
    window_config = {k: str(v) for k, v in sorted(windows.items()) if k in WINDOW_KEYS}
    extra = {"time_column": time_column, "windows": ranges, "rows": int(len(times)), "window_config": window_config}
    folds = [Fold(train, validation)]
    plan = SplitPlan("temporal_split", folds, test, _describe("temporal_split", folds, test, y, extra))
    check_temporal_order(times, plan)
    return plan


def plan_split(frame: pd.DataFrame, labels: Any, split_config: Mapping[str, Any], *, seed: int, time_column: str | None = None) -> SplitPlan:
    """Dispatch on `split_config["strategy"]` (the experiment.yaml `split` section).

    Raises InvalidInput for an unknown strategy or any error of the chosen strategy.
    """
    strategy = split_config.get("strategy")
    if strategy == "stratified_kfold":
        return stratified_kfold(labels, n_splits=int(split_config.get("n_splits", 5)), test_size=float(split_config["test_size"]), seed=seed)
    if strategy == "temporal_split":
        if not time_column:
            raise InvalidInput("temporal_split needs a time_column in the standards", "set time_column in project_standards.yaml", rule_id="split.time_column")
        return temporal_split(frame, time_column=time_column, windows=split_config, labels=labels)
    raise InvalidInput(f"unknown split strategy {strategy!r}", "use one of the standards' allowed.split_strategies", rule_id="split.config")
