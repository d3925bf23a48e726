"""Which dataset columns a run may use as features (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from policies.data import is_named


def excluded_columns(config: Mapping[str, Any], standards: Mapping[str, Any]) -> set[str]:
    """Label, time column, PII, protected attributes (unless their use is on) and features.exclude."""
    excluded = {config["data"]["target"], *(standards.get("pii_columns") or []), *config["features"]["exclude"]}
    if standards.get("time_column"):
        excluded.add(standards["time_column"])
    if config["features"]["use_protected_attributes"] is not True:
        excluded.update(standards.get("protected_attributes") or [])
    return excluded


def never_features(config: Mapping[str, Any], standards: Mapping[str, Any]) -> list[str]:
    """The names whose every spelling (policies/data.py column_key) is left out of the features:
    PII, the label and the time column, and the protected attributes unless their use is on. A run
    reads the label and the time column by their exact names, so `Loan_Status` beside `loan_status`
    is a copy of the label: as a feature it would hand the model its answer."""
    names = [*(standards.get("pii_columns") or []), config["data"]["target"], standards.get("time_column")]
    if config["features"]["use_protected_attributes"] is not True:
        names += standards.get("protected_attributes") or []
    return [str(n) for n in names if n]


def select_features(frame: pd.DataFrame, config: Mapping[str, Any], standards: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(feature columns in dataset order, the categorical ones among them)."""
    excluded, named = excluded_columns(config, standards), never_features(config, standards)
    # PII in any case, with stray spaces or in a look-alike spelling (`Email `, `ｅｍａｉｌ`) is the
    # standards' column, as load_dataset masks it; the same holds for the other names above.
    features = [str(c) for c in frame.columns if str(c) not in excluded and not is_named(c, named) and not str(c).startswith("__")]
    categorical = [c for c in features if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    return features, categorical


def context_columns(columns: Any, features: list[str], standards: Mapping[str, Any]) -> list[str]:
    """Columns build_features is given beside the features and that the child drops from its output:
    the standards' time column, when the dataset has it, so a feature can be measured from each
    row's own time (an account's age at application). It is never a feature itself."""
    time_column = standards.get("time_column")
    present = {str(c) for c in columns}
    return [str(time_column)] if time_column and str(time_column) in present and time_column not in features else []
