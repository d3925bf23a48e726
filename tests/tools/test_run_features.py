"""Which columns a run trains on: never the label or the time column, in any spelling that has
their column_key (another case, stray spaces, full-width or zero-width characters)."""

from __future__ import annotations

import pandas as pd
import pytest

from tools.run_features import select_features

STANDARDS = {"time_column": "issue_d", "pii_columns": ["email"], "protected_attributes": ["gender"]}
CONFIG = {"data": {"target": "loan_status"}, "features": {"exclude": [], "use_protected_attributes": False}}


def _frame(**extra: list) -> pd.DataFrame:
    base = {"issue_d": ["Jan-2017", "Feb-2017"], "income": [50.0, 60.0], "grade": ["A", "B"], "loan_status": ["Fully Paid", "Charged Off"]}
    return pd.DataFrame({**base, **extra})


@pytest.mark.parametrize("spelling", ["Loan_Status", "loan_status ", "LOAN_STATUS", "ｌｏａｎ_ｓｔａｔｕｓ", "loan\u200b_status"])
def test_a_copy_of_the_label_in_a_look_alike_spelling_is_never_a_feature(spelling: str) -> None:
    frame = _frame(**{spelling: ["Fully Paid", "Charged Off"], "loan_status_note": ["x", "y"]})
    features, categorical = select_features(frame, CONFIG, STANDARDS)
    assert features == ["income", "grade", "loan_status_note"] and categorical == ["grade", "loan_status_note"]  # merely containing the name: a feature


@pytest.mark.parametrize("spelling", ["Issue_D", " issue_d", "ｉｓｓｕｅ_ｄ"])
def test_the_time_column_in_a_look_alike_spelling_is_never_a_feature_beside_it_or_alone(spelling: str) -> None:
    assert select_features(_frame(**{spelling: ["Jan-2017", "Feb-2017"]}), CONFIG, STANDARDS)[0] == ["income", "grade"]
    alone = _frame().rename(columns={"issue_d": spelling})
    assert select_features(alone, CONFIG, STANDARDS)[0] == ["income", "grade"]


def test_without_a_time_column_in_the_standards_only_the_label_is_left_out() -> None:
    features, _ = select_features(_frame(Loan_Status=["a", "b"]), CONFIG, {**STANDARDS, "time_column": None})
    assert features == ["issue_d", "income", "grade"]


def test_a_features_exclude_entry_leaves_out_exactly_the_column_it_spells() -> None:
    """No normalisation: `ｇrade` (one full-width letter) names that column, never `grade` beside it."""
    frame = _frame(**{"ｇrade": ["A", "B"], "inc\u200bome": [1.0, 2.0]})
    config = {**CONFIG, "features": {"exclude": ["ｇrade", "inc\u200bome"], "use_protected_attributes": False}}
    assert select_features(frame, config, STANDARDS)[0] == ["income", "grade"]
    config = {**CONFIG, "features": {"exclude": ["grade"], "use_protected_attributes": False}}
    assert select_features(frame, config, STANDARDS)[0] == ["income", "ｇrade", "inc\u200bome"]


def _validated_exclude(names: list[str]) -> list[str]:
    import yaml

    from server.workspace import TEMPLATE_DIR
    from tools.experiment_schema import validate_experiment

    raw = yaml.safe_load((TEMPLATE_DIR / "configs/experiment.yaml").read_text())
    raw["features"]["exclude"] = names
    config, problems = validate_experiment(raw)
    return problems if config is None else list(config.features.exclude)


def test_features_exclude_holds_any_unicode_column_name_as_spelled() -> None:
    names = ["ｌoan_status", "loan\u200bstatus", "Ｌｏａｎ Ｓｔａｔｕｓ", "e\u0301tat", "\u00e9tat", " ", "🙂", "x" * 256]
    assert _validated_exclude(names) == names  # NFD and NFC `état` stay two names


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("loan_status\t", "it holds U+0009"),
        ("a\x1b[31m", "it holds U+001B"),
        ("a\x85", "it holds U+0085"),
        ("x" * 257, "it has 257 characters"),
        ("", "this one is empty"),
        ("\u202eloan_status", "it holds U+202E (a bidi control"),
        ("loan\u2066status\u2069", "it holds U+2066 (a bidi control"),
        ("loan\u2028status", "it holds U+2028 (a line or paragraph separator"),
        ("loan\U000e0041", "it holds U+E0041 (a tag character"),
    ],
    ids=["tab", "terminal_escape", "c1_next_line", "over_long", "empty", "right_to_left_override", "isolate", "line_separator", "tag_character"],
)
def test_a_name_features_exclude_cannot_hold_is_refused_with_what_to_do(name: str, says: str) -> None:
    (problem,) = _validated_exclude(["income", name])
    assert problem.startswith("features.exclude.1: ") and says in problem and "exact name as the dataset spells it" in problem
    assert "no control characters" in problem and (says == "this one is empty" or "drop or rename it at import (mlgate data add)" in problem)
