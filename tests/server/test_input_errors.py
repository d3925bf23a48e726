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
