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
