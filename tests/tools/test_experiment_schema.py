"""The experiment and reasoning schemas: strict, per-family hyperparameters, per-strategy splits."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import pytest

from server.safe_yaml import load_document
from server.settings import CONFIGS_DIR, policy_limits
from tools.experiment_schema import ExperimentConfig, ReasoningConfig, known_paths, validate_experiment

TEMPLATE = CONFIGS_DIR / "template" / "configs"
LIMITS = policy_limits()["documents"]


def template(name: str) -> dict[str, Any]:
    return load_document((TEMPLATE / name).read_bytes(), LIMITS, name=name)


def with_(section: str, value: Any) -> dict[str, Any]:
    document = deepcopy(template("experiment.yaml"))
    document[section] = value
    return document


def problems(document: dict[str, Any]) -> list[str]:
    config, errors = validate_experiment(document)
    assert (config is None) == bool(errors)
    return errors


def test_template_experiment_and_reasoning_validate() -> None:
    config, errors = validate_experiment(template("experiment.yaml"))
    assert errors == [] and config is not None and config.model.params.max_depth == 4
    assert ReasoningConfig.model_validate(template("reasoning.yaml")).outcome == "pending"


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("xgboost", {"n_estimators": 50, "max_depth": 6, "learning_rate": 0.05}),
        ("torch_mlp", {"hidden_sizes": [32, 16], "batch_size": 64, "grad_accum_steps": 4, "epochs": 3, "lr": 0.01}),
        ("logistic_regression", {"C": 0.5, "max_iter": 200}),
        ("random_forest", {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5}),
    ],
)
def test_each_model_family_accepts_its_own_hyperparameters(model: str, params: dict[str, Any]) -> None:
    assert problems(with_("model", {"type": model, "params": params})) == []


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("xgboost", {"hidden_sizes": [8]}, "model.params.hidden_sizes: unknown field"),
        ("torch_mlp", {"n_estimators": 10}, "model.params.n_estimators: unknown field"),
        ("torch_mlp", {"batch_size": 0}, "model.params.batch_size"),
        ("torch_mlp", {"epochs": "3"}, "model.params.epochs: Input should be a valid integer"),
        ("xgboost", {"max_depth": 6.5}, "model.params.max_depth"),
        ("xgboost", {"max_depth": True}, "model.params.max_depth"),
        ("logistic_regression", {"C": 0}, "model.params.C"),
        ("svm", {}, "model"),
    ],
)
def test_hyperparameters_are_validated_per_family_without_coercion(model: str, params: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(with_("model", {"type": model, "params": params}))), problems(with_("model", {"type": model, "params": params}))


@pytest.mark.parametrize(
    "split",
    [
        {"strategy": "stratified_kfold", "n_splits": 3, "test_size": 0.25},
        {"strategy": "temporal_split", "test_size": 0.2},
        {"strategy": "temporal_split", "test_size": 0.2, "validation_size": 0.1},
        {"strategy": "temporal_split", "train_end": "2021-12-31", "validation_end": "2022-06-30"},
        {"strategy": "temporal_split", "train_end": 100, "validation_end": 200},
    ],
)
def test_split_strategies_accept_their_forms(split: dict[str, Any]) -> None:
    assert problems(with_("split", split)) == []


@pytest.mark.parametrize(
    ("split", "expected"),
    [
        ({"strategy": "stratified_kfold", "n_splits": 1, "test_size": 0.2}, "split.n_splits"),
        ({"strategy": "stratified_kfold", "n_splits": 5}, "split.test_size: Field required"),
        ({"strategy": "temporal_split"}, "give either test_size"),
        ({"strategy": "temporal_split", "test_size": 0.2, "train_end": "2021-01-01", "validation_end": "2022-01-01"}, "give either test_size"),
        ({"strategy": "temporal_split", "train_end": "2021-01-01"}, "give either test_size"),
        ({"strategy": "temporal_split", "train_end": "2022-01-01", "validation_end": "2021-01-01"}, "train_end must be before"),
        ({"strategy": "temporal_split", "train_end": "2022-01-01", "validation_end": 5}, "train_end must be before"),
        ({"strategy": "temporal_split", "test_size": 0.6}, "must leave rows for training"),
        ({"strategy": "temporal_split", "validation_size": 0.2, "train_end": "2021-01-01", "validation_end": "2022-01-01"}, "validation_size only"),
        ({"strategy": "temporal_split", "train_end": "01/02/2021", "validation_end": "2022-01-01"}, "split.train_end"),
        ({"strategy": "random", "test_size": 0.2}, "split"),
    ],
)
def test_invalid_splits_are_named(split: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in problems(with_("split", split))), problems(with_("split", split))


def test_temporal_split_writes_only_the_chosen_form() -> None:
    config, _ = validate_experiment(with_("split", {"strategy": "temporal_split", "test_size": 0.2}))
    assert config is not None and config.model_dump(mode="json")["split"] == {"strategy": "temporal_split", "test_size": 0.2}


def test_case_variants_are_unknown_fields_with_a_hint() -> None:
    document = template("experiment.yaml")
    document["Data"] = {"Target": "churn"}
    assert "Data: unknown field (did you mean 'data'? keys are case-sensitive)" in problems(document)


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("model", {"type": "torch_mlp", "params": {"n_estimators": 10}},
         "model.params.n_estimators: unknown field: n_estimators is not a parameter of torch_mlp; its parameters are hidden_sizes, "),
        ("model", {"type": "logistic_regression", "params": {"Max_depth": 3}},
         "model.params.Max_depth: unknown field: Max_depth is not a parameter of logistic_regression; its parameters are C, "),
        ("split", {"strategy": "stratified_kfold", "n_splits": 5, "test_size": 0.2, "validation_size": 0.1},
         "split.validation_size: unknown field: validation_size is not a field of stratified_kfold; its fields are strategy, n_splits, test_size"),
    ],
)
def test_a_field_of_another_model_type_or_split_strategy_is_named_as_such(section: str, value: Any, expected: str) -> None:
    found = problems(with_(section, value))
    assert any(p.startswith(expected) for p in found), found
    assert not any("did you mean" in p for p in found), found


def test_the_fields_another_model_type_left_behind_are_named_in_one_line() -> None:
    found = problems(with_("model", {"type": "torch_mlp", "params": {"n_estimators": 10, "max_depth": 3, "Epochs": 2}}))
    assert found[0] == (
        "model.params: unknown fields: n_estimators, max_depth are not parameters of torch_mlp; "
        "its parameters are hidden_sizes, dropout, epochs, batch_size, grad_accum_steps, lr, weight_decay"
    ), found
    assert "model.params.Epochs: unknown field (did you mean 'model.params.epochs'? keys are case-sensitive)" in found, found
    assert len(found) == 2, found


def test_a_case_hint_inside_a_model_type_names_its_own_parameter_never_the_rejected_name() -> None:
    found = problems(with_("model", {"type": "torch_mlp", "params": {"Epochs": 3}}))
    assert "model.params.Epochs: unknown field (did you mean 'model.params.epochs'? keys are case-sensitive)" in found, found
    found = problems(with_("split", {"strategy": "stratified_kfold", "N_splits": 5, "test_size": 0.2}))
    assert "split.N_splits: unknown field (did you mean 'split.n_splits'? keys are case-sensitive)" in found, found


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("data", {"dataset": None, "target": "default", "positive_class": True}, "data.positive_class"),
        ("data", {"dataset": "../../etc", "target": "default", "positive_class": 1}, "data.dataset"),
        ("features", {"exclude": [], "use_protected_attributes": "false"}, "features.use_protected_attributes"),
        ("features", {"exclude": [], "use_protected_attributes": 0}, "features.use_protected_attributes"),
        ("evaluation", {"primary_metric": "roc_auc", "metrics": ["f1"], "bootstrap_samples": 10}, "must include primary_metric"),
        ("evaluation", {"primary_metric": "roc_auc", "metrics": ["roc_auc", "roc_auc"], "bootstrap_samples": 10}, "must not repeat"),
        ("evaluation", {"primary_metric": "roc_auc", "metrics": ["roc_auc"], "bootstrap_samples": 10.0}, "evaluation.bootstrap_samples"),
        ("experiment", {"name": "x", "seed": -1}, "experiment.seed"),
        ("experiment", {"name": "x", "seed": float("nan")}, "experiment.seed"),
    ],
)
def test_wrong_types_are_not_coerced(section: str, value: Any, expected: str) -> None:
    assert any(p.startswith(expected) or expected in p for p in problems(with_(section, value)))


def test_missing_sections_are_required_not_defaulted() -> None:
    document = template("experiment.yaml")
    del document["features"]
    assert "features: Field required" in problems(document)


def test_string_positive_class_stays_a_string() -> None:
    config, _ = validate_experiment(with_("data", {"dataset": None, "target": "default", "positive_class": "1"}))
    assert config is not None and config.data.positive_class == "1"


def test_known_paths_cover_sections_and_family_hyperparameters() -> None:
    paths = set(known_paths(ExperimentConfig))
    assert {"data.target", "split.train_end", "model.params.grad_accum_steps", "model.params.max_depth", "evaluation.bootstrap_samples"} <= paths


def test_every_field_has_a_description() -> None:
    schema = ExperimentConfig.model_json_schema()
    undocumented = [f"{name}.{field}" for name, model in schema["$defs"].items() for field, spec in model.get("properties", {}).items() if "description" not in spec]
    assert undocumented == []


def test_reasoning_rejects_unknown_fields_and_bad_outcomes() -> None:
    base = template("reasoning.yaml")
    for bad in ({**base, "confirm": True}, {**base, "outcome": "great"}, {**base, "metric_delta": "0.1"}):
        with pytest.raises(ValueError):
            ReasoningConfig.model_validate(bad)



@pytest.mark.parametrize("text", ["tune \x1b[2J\x1b[1;31mALL GATES PASSED", "deeper trees\x00", "deeper \u202eseert", "line\u2028separator", "bell\x07"])
@pytest.mark.parametrize("field", ["change_description", "expected_effect"])
def test_reasoning_text_with_control_characters_is_refused(field: str, text: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        ReasoningConfig.model_validate({**template("reasoning.yaml"), "hypothesis_category": "baseline", field: text})


def test_reasoning_text_keeps_line_breaks_tabs_and_any_script() -> None:
    text = "Deeper trees:\n\t- income x debt interactions\nDéfaut de crédit, 信用"
    assert ReasoningConfig.model_validate({**template("reasoning.yaml"), "hypothesis_category": "baseline", "change_description": text}).change_description == text


def test_a_validator_s_own_words_come_without_pydantic_s_prefix() -> None:
    found = problems(with_("evaluation", {"primary_metric": "roc_auc", "metrics": ["f1"], "bootstrap_samples": 10}))
    assert "evaluation: metrics must include primary_metric" in " ".join(found) and not any("Value error" in p for p in found), found


def test_an_unknown_hyperparameter_is_answered_with_the_ones_the_family_takes() -> None:
    found = problems(with_("model", {"type": "xgboost", "params": {"n_jobs": 64, "max_dept": 6}}))
    assert len(found) == 1 and found[0].startswith("model.params: unknown fields: n_jobs, max_dept are not parameters of xgboost; its parameters are n_estimators, max_depth, "), found


def test_an_unknown_field_of_a_section_is_answered_with_the_sections_fields() -> None:
    document = with_("data", {"dataset": None, "target": "default", "positive_class": 1, "weights": "w"})
    assert problems(document) == ["data.weights: unknown field: weights is not a field of data; its fields are dataset, target, positive_class"]
    assert problems({**with_("data", {"dataset": None, "target": "default", "positive_class": 1}), "notes": "x"})[0].startswith("notes: unknown field: notes is not a field of the config; its fields are experiment, data")


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("model", {"params": {"max_depth": 3}}, "model: type is missing (one of xgboost, logistic_regression, random_forest, torch_mlp)"),
        ("split", {"test_size": 0.2}, "split: strategy is missing (one of stratified_kfold, temporal_split)"),
    ],
)
def test_a_model_or_split_without_its_type_names_the_field_and_its_choices(section: str, value: Any, expected: str) -> None:
    [found] = problems(with_(section, value))
    assert found.startswith(expected) and "discriminator" not in found, found


@pytest.mark.parametrize(("section", "field"), [("model", "type"), ("split", "strategy")])
def test_an_unknown_model_type_or_split_strategy_lists_the_choices_without_echoing_it(section: str, field: str) -> None:
    [found] = problems(with_(section, {field: "ghp_notatoken_but_agent_text", "params": {}}))
    assert found.startswith(f"{section}.{field}: must be one of ") and "ghp_" not in found, found
