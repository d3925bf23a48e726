"""The child's score task in-process: a trained model's artifact scores rows without training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.training.rundirs import synthetic_frame, write_run_dir, write_score_dir
from tests.training.test_runner import predictions, run_child
from training.spec import MODEL_TYPES


def trained(tmp_path: Path, model_type: str, **options) -> Path:
    run_dir = write_run_dir(tmp_path / "trained", model_type, **options)
    assert run_child(run_dir)[0] == 0
    return run_dir


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_family_scored_from_its_artifact_gives_the_scores_it_gave_when_trained(tmp_path, model_type):
    run_dir = trained(tmp_path, model_type)
    status, result = run_child(write_score_dir(tmp_path / "scored", run_dir))
    assert status == 0 and result.status == "ok" and result.n_train_rows == 0 and result.train_seconds == 0
    scored = predictions(tmp_path / "scored")
    assert scored["__row_id__"].tolist() == predictions(run_dir)["__row_id__"].tolist()
    pd.testing.assert_series_equal(scored["score"], predictions(run_dir)["score"], rtol=1e-6, atol=1e-7)
    assert not (tmp_path / "scored" / "outputs" / "progress.jsonl").exists()  # nothing was trained


def test_other_rows_are_scored_through_the_models_own_features_py(tmp_path):
    source = "def build_features(frame):\n    out = frame.copy()\n    out['income'] = out['income'] * 0\n    return out\n"
    run_dir = trained(tmp_path, "logistic_regression", features_source=source)
    other = synthetic_frame(40, seed=99).drop(columns="__label__")
    assert run_child(write_score_dir(tmp_path / "scored", run_dir, other))[0] == 0
    scored = predictions(tmp_path / "scored")
    assert scored["__row_id__"].tolist() == other["__row_id__"].tolist() and scored["score"].between(0, 1).all()
    # income multiplied by 0 in the model's features.py: rows differing only in income score the same
    changed = other.assign(income=other["income"] + 1000)
    assert run_child(write_score_dir(tmp_path / "changed", run_dir, changed))[0] == 0
    pd.testing.assert_series_equal(predictions(tmp_path / "changed")["score"], scored["score"])


def test_rows_lacking_a_feature_column_are_refused_naming_the_columns(tmp_path):
    run_dir = trained(tmp_path, "logistic_regression")
    other = synthetic_frame(40).drop(columns=["__label__", "region"])
    status, result = run_child(write_score_dir(tmp_path / "scored", run_dir, other))
    assert status == 1 and (result.phase, result.code) == ("inputs", "columns_missing") and "region" in result.message


def test_labelled_rows_are_refused_for_scoring(tmp_path):
    run_dir = trained(tmp_path, "logistic_regression")
    status, result = run_child(write_score_dir(tmp_path / "scored", run_dir, synthetic_frame(40)))
    assert status == 1 and result.code == "eval_labelled"


def test_a_forest_file_holding_other_types_than_a_forest_is_never_loaded(tmp_path):
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    run_dir = trained(tmp_path, "random_forest")
    skops.io.dump(FunctionTransformer(print), run_dir / "outputs" / "model" / "model.skops")
    status, result = run_child(write_score_dir(tmp_path / "scored", run_dir))
    assert status == 1 and result.phase == "score" and not (tmp_path / "scored" / "outputs" / "predictions.parquet").exists()


@pytest.mark.parametrize("model_type", ["logistic_regression", "torch_mlp", "xgboost"])
def test_a_model_file_for_another_width_is_model_unreadable(tmp_path, model_type):
    run_dir = trained(tmp_path, model_type)
    transform_path = run_dir / "outputs" / "model" / "feature_transform.json"
    transform = json.loads(transform_path.read_text())
    transform["columns"].remove("age")
    del transform["numeric"]["age"]
    transform_path.write_text(json.dumps(transform))
    status, result = run_child(write_score_dir(tmp_path / "scored", run_dir))
    assert status == 1 and (result.phase, result.code) == ("score", "model_unreadable")


def test_a_transform_that_is_not_one_is_model_unreadable(tmp_path):
    run_dir = trained(tmp_path, "logistic_regression")
    (run_dir / "outputs" / "model" / "feature_transform.json").write_text(json.dumps({"columns": ["income"], "numeric": {}, "categories": {}}))
    status, result = run_child(write_score_dir(tmp_path / "scored", run_dir))
    assert status == 1 and result.code == "model_unreadable"
