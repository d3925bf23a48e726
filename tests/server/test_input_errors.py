"""Schema refusals name what is needed, not pydantic's class names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from server.input_errors import nested_models, validation_denial
from tools.experiment_schema import ReasoningConfig
from tools.propose_config_change import ProposeConfigChangeInput


def _reason_for(model: type[BaseModel], arguments: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(arguments)
    return validation_denial(caught.value, arguments, model).reason


@pytest.mark.parametrize("reasoning", ["use the imported credit data", ["baseline"], 3])
def test_a_nested_object_given_as_text_is_told_which_fields_it_takes(reasoning: Any) -> None:
    reason = _reason_for(ProposeConfigChangeInput, {"changes": {"seed": 1}, "reasoning": reasoning})
    assert reason == (
        "invalid arguments: reasoning: an object is needed, with hypothesis_category, change_description, "
        "expected_effect (optional: outcome, metric_delta)"
    ), reason
    assert "ReasoningConfig" not in reason


def test_the_nested_models_of_a_tool_input_are_found_through_optional_fields() -> None:
    assert nested_models(ProposeConfigChangeInput) == {"ReasoningConfig": ReasoningConfig}


def test_without_the_input_model_pydantic_s_message_is_kept() -> None:
    arguments = {"changes": {"seed": 1}, "reasoning": "why"}
    with pytest.raises(ValidationError) as caught:
        ProposeConfigChangeInput.model_validate(arguments)
    assert "ReasoningConfig" in validation_denial(caught.value, arguments).reason


def test_an_unknown_argument_is_told_which_arguments_the_tool_takes() -> None:
    from tools.list_runs import ListRunsInput  # noqa: PLC0415

    reason = _reason_for(ListRunsInput, {"limit": 10})
    assert reason == "invalid arguments: limit: unknown argument; this tool takes status, outcome, run_kind, min_primary_metric, sort_by, ascending, max_results", reason


def test_an_unknown_field_of_a_nested_object_is_told_which_fields_that_object_takes() -> None:
    reasoning = {"hypothesis_category": "baseline", "change_description": "a b c d", "expected_effect": "e f g h", "confidence": "high"}
    reason = _reason_for(ProposeConfigChangeInput, {"changes": {"seed": 1}, "reasoning": reasoning, "dryrun": True})
    assert reason == (
        "invalid arguments: reasoning.confidence: unknown field; dryrun: unknown argument; "
        "reasoning takes hypothesis_category, change_description, expected_effect, outcome, metric_delta; this tool takes changes, reasoning, dry_run"
    ), reason


def test_an_unknown_argument_that_looks_like_a_credential_is_named_only_by_its_hash() -> None:
    from tools.list_runs import ListRunsInput  # noqa: PLC0415

    reason = _reason_for(ListRunsInput, {"sk-abcdefghijklmnopqrstuvwxyz0123456789": 1})
    assert "sk-abc" not in reason and reason.startswith("invalid arguments: field #") and "this tool takes status" in reason


def test_a_validator_s_own_words_come_without_pydantic_s_prefix() -> None:
    from tools.compare_runs import CompareRunsInput  # noqa: PLC0415

    reason = _reason_for(CompareRunsInput, {"run_ids": ["a" * 32, "a" * 32]})
    assert reason == "invalid arguments: run_ids: run ids must be distinct", reason


def test_a_value_of_the_wrong_form_is_told_the_field_s_description_not_its_regex() -> None:
    from tools.get_run import GetRunInput  # noqa: PLC0415

    reason = _reason_for(GetRunInput, {"run_id": "305ebc07a3ec"})  # the 12 characters an open_pr branch name carries
    assert reason == "invalid arguments: run_id: not of the form needed: MLflow run id (32 lowercase hex), e.g. from list_runs or run_experiment (pattern ^[0-9a-f]{32}$)", reason
