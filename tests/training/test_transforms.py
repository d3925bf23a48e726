"""training.transforms: statistics come from training rows only; missing values and unseen
categories at evaluation time are handled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.errors import FeatureError
from training.transforms import MISSING_CATEGORY, FeatureTransform, apply_build_features, load_build_features


def test_numeric_statistics_are_fitted_on_training_rows_only():
    train = pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0]})
    transform = FeatureTransform.fit(train, (), max_categories=10)
    evaluation = pd.DataFrame({"x": [1000.0, np.nan]})
    encoded = transform.transform(evaluation, "evaluation")
    stats = transform.numeric["x"]
    assert stats.median == 2.0  # the evaluation value 1000 did not move it
    assert encoded[1, 0] == pytest.approx((2.0 - stats.mean) / stats.std)  # missing -> training median


def test_unseen_category_encodes_as_all_zeros_and_missing_is_its_own_category():
    train = pd.DataFrame({"city": ["a", "b", None, "a"]})
    transform = FeatureTransform.fit(train, (), max_categories=10)
    encoded = transform.transform(pd.DataFrame({"city": ["zzz", None, "b"]}), "evaluation")
    # most frequent first, ties by name
    assert transform.feature_names == ["city=a", f"city={MISSING_CATEGORY}", "city=b"]
    assert encoded.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_declared_categorical_numbers_are_one_hot_encoded_and_rare_categories_capped():
    train = pd.DataFrame({"code": [1, 1, 2, 3]})
    transform = FeatureTransform.fit(train, ("code",), max_categories=1)
    assert transform.feature_names == ["code=1"]


def test_evaluation_output_missing_a_training_column_is_a_feature_error():
    transform = FeatureTransform.fit(pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}), (), max_categories=5)
    with pytest.raises(FeatureError, match="lacks columns"):
        transform.transform(pd.DataFrame({"x": [1.0]}), "evaluation")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n", "must define build_features"),
        ("def build_features(frame):\n    return frame.iloc[:1]\n", "returned 1 rows"),
        ("def build_features(frame):\n    return frame.to_numpy()\n", "not a DataFrame"),
        ("def build_features(frame):\n    return frame.rename(columns={'b': 'a'})\n", "unique string column"),
    ],
)
def test_build_features_output_is_checked(tmp_path, source, message):
    path = tmp_path / "features.py"
    path.write_text(source)
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(FeatureError, match=message):
        apply_build_features(load_build_features(path), frame, "training")
