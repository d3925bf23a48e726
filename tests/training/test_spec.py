"""training.spec: hyperparameters validated per family, unknown keys refused."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from training.spec import CPU_BATCH_SIZE, CUDA_BATCH_SIZE, MODEL_TYPES, RunSpec, parse_spec


def spec_json(model: dict, **extra) -> str:
    return json.dumps({"model": model, "seed": 3, "feature_columns": ["a"], **extra})


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_family_validates_with_default_hyperparameters(model_type):
    spec = parse_spec(spec_json({"type": model_type}))
    assert spec.model.type == model_type and spec.device == "auto" and spec.task == "fit_predict"


@pytest.mark.parametrize(
    ("model", "bad_location"),
    [
        ({"type": "xgboost", "params": {"lr": 0.1}}, "lr"),  # the torch name on the wrong family
        ({"type": "xgboost", "params": {"max_depth": 0}}, "max_depth"),
        ({"type": "torch_mlp", "params": {"hidden_sizes": []}}, "hidden_sizes"),
        ({"type": "torch_mlp", "params": {"batch_size": "64"}}, "batch_size"),  # strings are not coerced
        ({"type": "random_forest", "params": {"max_features": 1.5}}, "max_features"),
        ({"type": "logistic_regression", "params": {"penalty": "l1"}}, "penalty"),
        ({"type": "lightgbm"}, "model"),
    ],
)
def test_invalid_or_unknown_hyperparameters_are_rejected(model, bad_location):
    with pytest.raises(ValidationError) as caught:
        parse_spec(spec_json(model))
    assert bad_location in str(caught.value)


def test_unknown_top_level_keys_are_rejected():
    with pytest.raises(ValidationError, match="extra"):
        parse_spec(spec_json({"type": "xgboost"}, labels_path="/tmp/x"))


def test_effective_batch_size_is_batch_size_times_accumulation():
    spec = parse_spec(spec_json({"type": "torch_mlp", "params": {"batch_size": 32, "grad_accum_steps": 4}}))
    assert spec.model.params.effective_batch_size_on("cpu") == spec.model.params.effective_batch_size_on("cuda") == 128


def test_the_default_batch_size_is_auto_and_larger_on_cuda():
    params = parse_spec(spec_json({"type": "torch_mlp", "params": {"grad_accum_steps": 2}})).model.params
    assert params.batch_size == "auto"
    assert params.batch_size_on("cpu") == CPU_BATCH_SIZE and params.batch_size_on("cuda") == CUDA_BATCH_SIZE > CPU_BATCH_SIZE
    assert params.effective_batch_size_on("cuda") == 2 * CUDA_BATCH_SIZE


def test_batch_size_is_a_positive_integer_or_auto():
    for bad in ("Auto", "", 0, 1.5):
        with pytest.raises(ValidationError, match="batch_size"):
            parse_spec(spec_json({"type": "torch_mlp", "params": {"batch_size": bad}}))


def test_spec_requires_a_seed():
    with pytest.raises(ValidationError, match="seed"):
        RunSpec.model_validate_json(json.dumps({"model": {"type": "xgboost"}, "feature_columns": ["a"]}))
