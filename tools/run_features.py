"""Which dataset columns a run may use as features (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from policies.data import is_named, is_pii


def excluded_columns(config: Mapping[str, Any], standards: Mapping[str, Any]) -> set[str]:
    """Label, time column, PII, protected attributes (unless their use is on) and features.exclude."""
    excluded = {config["data"]["target"], *(standards.get("pii_columns") or []), *config["features"]["exclude"]}
    if standards.get("time_column"):
        excluded.add(standards["time_column"])
    if config["features"]["use_protected_attributes"] is not True:
        excluded.update(standards.get("protected_attributes") or [])
    return excluded


def select_features(frame: pd.DataFrame, config: Mapping[str, Any], standards: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(feature columns in dataset order, the categorical ones among them)."""
    excluded, pii = excluded_columns(config, standards), standards.get("pii_columns") or []
    # PII (and a protected attribute not approved for use) in any case, with stray spaces or in a
    # look-alike spelling (`Email `, `ｅｍａｉｌ`) is the standards' column, as load_dataset masks it.
    protected = [] if config["features"]["use_protected_attributes"] is True else standards.get("protected_attributes") or []
    features = [str(c) for c in frame.columns if str(c) not in excluded and not is_pii(c, pii) and not is_named(c, protected) and not str(c).startswith("__")]
    categorical = [c for c in features if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    return features, categorical
