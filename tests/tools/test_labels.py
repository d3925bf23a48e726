"""tools/labels.py: target values as 0/1 labels, and the refusals when they cannot be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tools.errors import InvalidInput
from tools.labels import binary_labels, is_positive, labels_from_target



def test_unlabeled_rows_are_refused_with_their_count_and_who_can_drop_them() -> None:
    with pytest.raises(InvalidInput) as refused:
        binary_labels(pd.Series([1, 0, None, 0, None]))
    assert refused.value.rule_id == "split.labels" and refused.value.reason == "the label has 2 missing values"
    assert "mlgate data add" in refused.value.remediation and "data.dataset" in refused.value.remediation


def test_labels_other_than_0_and_1_are_refused_and_0_1_labels_pass() -> None:
    with pytest.raises(InvalidInput) as refused:
        binary_labels(pd.Series([0, 1, 2]))
    assert refused.value.rule_id == "split.labels" and "found ['0', '1', '2']" in refused.value.reason
    assert binary_labels(pd.Series([1, 0, 1])).tolist() == [1, 0, 1]


@pytest.mark.parametrize("positive_class", ["true", "True", True, 1, "1", " TRUE "])
def test_a_boolean_label_s_positive_class_may_be_written_any_way_true_is(positive_class: object) -> None:
    # `mlgate standards set --positive-class true` stores the text 'true'; the column holds True.
    labels = pd.Series([True, False, True, None], dtype="object").astype("boolean")
    assert is_positive(labels, positive_class).tolist() == [True, False, True, False]
    assert labels_from_target(pd.Series([True, False, True]), positive_class).tolist() == [1, 0, 1]


def test_a_text_label_is_still_matched_exactly() -> None:
    assert is_positive(pd.Series(["Yes", "yes", " Yes", "No"]), "Yes").tolist() == [True, False, True, False]


@pytest.mark.parametrize(("positive_class", "matches"), [("maybe", "no"), (["Yes", "No"], "every")])
def test_a_positive_class_that_matches_no_labelled_row_or_all_is_refused_naming_the_label_s_values(positive_class: object, matches: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        labels_from_target(pd.Series(["No", "Yes", "No"]), positive_class)
    assert refused.value.rule_id == "split.labels"
    assert refused.value.reason.endswith(f"matches {matches} labelled row; the label's values are 'No', 'Yes'"), refused.value.reason
    assert "mlgate standards set --positive-class" in refused.value.remediation


@pytest.mark.parametrize("positive_class", [1, "1", "1.0", [1, 2], True, "true"])
def test_a_numeric_label_is_matched_by_value_so_1_names_a_float_1(positive_class: object) -> None:
    assert is_positive(pd.Series([1.0, 0.0, np.nan, 1.0]), positive_class).tolist() == [True, False, False, True]
    assert is_positive(pd.Series([1, 0, 1]), positive_class).tolist() == [True, False, True]
    assert not is_positive(pd.Series([1.0, 0.0]), "yes").any()
