"""Labels as 0/1: which target values are the positive class (one value or a list), and the
refusals when they cannot be 0/1 (unlabeled rows, a positive class matching no labelled row or
every one). Pure; run_experiment, promote's re-evaluation and load_dataset's class balance all
read labels through here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tools.errors import InvalidInput
from tools.listing import first_few


def binary_labels(labels: Any) -> np.ndarray:
    """Labels as an int8 array of 0/1. Raises InvalidInput on missing or non-binary values."""
    values = pd.Series(labels).reset_index(drop=True)
    if values.isna().any():
        raise InvalidInput(
            f"the label has {int(values.isna().sum())} missing values",
            "datasets are immutable: an operator imports a version without the unlabeled rows (`mlgate data add`), then "
            "propose data.dataset: <its hash>; load_dataset counts them (quality.class_balance.missing)",
            rule_id="split.labels",
        )
    unique = set(values.unique().tolist())
    if not unique <= {0, 1}:
        raise InvalidInput(
            f"labels must be 0/1 after mapping the positive class, found {sorted(map(str, unique))[:5]}",
            "map the target with the standards' label.positive_class before splitting",
            rule_id="split.labels",
        )
    return values.to_numpy(dtype=np.int8)


def positive_values(positive_class: Any) -> list[str]:
    """The label values that count as positive, as text: one value or a list of values."""
    values = positive_class if isinstance(positive_class, (list, tuple)) else [positive_class]
    return [str(v) for v in values]


BOOLEAN_TEXT = {"1": "true", "0": "false"}  # a boolean label's positive class may be written 1 / 0


def is_positive(series: pd.Series, positive_class: Any) -> pd.Series:
    """Whether each label is any of the positive values: a numeric label by value (1 names 1.0),
    a boolean one as true/false in any case (`true`, `True` and 1 all name True), any other as
    text with surrounding spaces ignored. Missing labels are False here: callers count them."""
    positives = {v.strip() for v in positive_values(positive_class)}
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.isin(_numbers(positives)) & series.notna()  # a float label (1.0) matches 1
    text = series.astype(str).str.strip()
    if pd.api.types.is_bool_dtype(series):
        positives = {BOOLEAN_TEXT.get(v, v).lower() for v in positives}
        text = text.str.lower()
    return text.isin(positives) & series.notna()


def _numbers(values: set[str]) -> set[float]:
    """The positive values a numeric label can hold: numbers, and true/false as 1/0."""
    numbers = set()
    for value in values:
        try:
            numbers.add(float({"true": "1", "false": "0"}.get(value.lower(), value)))
        except ValueError:
            continue  # a text positive class never matches a number
    return numbers


def labels_from_target(target: Any, positive_class: Any) -> np.ndarray:
    """0/1 labels: 1 where the target is any of the positive values (`is_positive`). Raises
    InvalidInput on missing labels and when the positive class matches no labelled row, or all."""
    series = pd.Series(target).reset_index(drop=True)
    positive = is_positive(series, positive_class).to_numpy(dtype=np.float64)
    labels = binary_labels(pd.Series(np.where(series.isna().to_numpy(), np.nan, positive)))  # missing stays missing: refused there
    if labels.size and labels.min() == labels.max():
        raise _one_class(series, positive_class, matched=bool(labels[0]))
    return labels


def _one_class(series: pd.Series, positive_class: Any, *, matched: bool) -> InvalidInput:
    """The label's own values are shown (at most 5, as load_dataset's class_balance counts them)."""
    values = sorted(map(str, series.dropna().unique().tolist()))
    return InvalidInput(
        f"label.positive_class {positive_values(positive_class)} matches {'every' if matched else 'no'} labelled row; the label's values are {first_few(values, repr)}",
        "an operator names the positive class as the label spells it (`mlgate standards set --positive-class VALUE`); "
        "load_dataset shows the values under quality.class_balance.counts",
        rule_id="split.labels",
    )
