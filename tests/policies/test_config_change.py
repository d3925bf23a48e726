from copy import deepcopy
from typing import Any

import pytest

from policies import Principal
from policies.config_change import canonical, canonical_at, protected_changes, unapproved_deviations
from policies.decision import decide_one
from policies.registry import load_all
from tests.policies.cases import BASE_STANDARDS, RuleCase, config

AGENT, HUMAN = Principal("codex", "agent"), Principal("alice", "human")
CONFIG: dict[str, Any] = {
    "experiment": {"name": "baseline", "seed": 42},
    "data": {"dataset": None, "target": "default", "positive_class": 1},
    "split": {"strategy": "stratified_kfold", "n_splits": 5, "test_size": 0.2},
    "model": {"type": "xgboost", "params": {"max_depth": 4}},
    "features": {"exclude": [], "use_protected_attributes": False},
    "evaluation": {"primary_metric": "roc_auc", "metrics": ["roc_auc", "f1"], "bootstrap_samples": 200},
}
REASONING = {
    "hypothesis_category": "hyperparameter_tuning",
    "change_description": "Deeper trees capture interactions between income and debt",
    "expected_effect": "roc_auc rises by about one point on validation folds",
}
HASH = "a" * 64
PROTECTED = BASE_STANDARDS["protected_fields"]


def changed(**paths: Any) -> dict[str, Any]:
    """CONFIG with dotted-path (written with __) values replaced."""
    result = deepcopy(CONFIG)
    for path, value in paths.items():
        *parents, leaf = path.split("__")
        node = result
        for part in parents:
            node = node[part]
        node[leaf] = value
    return result


def facts(**overrides: Any) -> dict[str, Any]:
    base = {
        "principal": AGENT, "schema_errors": [], "current": deepcopy(CONFIG), "config": changed(model__params={"max_depth": 6}),
        "reasoning": dict(REASONING), "change_hash": HASH, "approval": None, "in_force": {},
    }
    return {**base, **overrides}


def approval(status: str, change_hash: str = HASH) -> dict[str, Any]:
    return {"id": "apr-0123456789ab", "status": status, "change_hash": change_hash, "decided_by": "alice"}


TARGET_CHANGE = changed(data__target="churn")
STANDARDS_SMALL = {**BASE_STANDARDS, "allowed": {**BASE_STANDARDS["allowed"], "model_types": ["logistic_regression"]}}

CASES = [
    RuleCase("config.schema_valid", "allow", facts(), name="valid"),
    RuleCase("config.schema_valid", "deny", facts(config=None, schema_errors=["Data: unknown field"]), name="unknown_field"),
    RuleCase("config.schema_valid", "deny", facts(config=None), name="no_config_without_errors"),
    RuleCase("config.allowed_values", "allow", facts(), name="all_allowed"),
    RuleCase("config.allowed_values", "deny", facts(), config(standards=STANDARDS_SMALL), name="model_type_not_allowed"),
    RuleCase("config.allowed_values", "deny", facts(config=changed(evaluation__metrics=["roc_auc", "mcc"])), name="metric_not_allowed"),
    RuleCase("config.allowed_values", "deny", facts(reasoning={**REASONING, "hypothesis_category": "vibes"}), name="hypothesis_category"),
    RuleCase("config.allowed_values", "deny", facts(config=None), name="unchecked_when_invalid"),
    RuleCase("config.protected_fields", "allow", facts(), name="unprotected_change"),
    RuleCase("config.protected_fields", "allow", facts(current=TARGET_CHANGE, config=deepcopy(CONFIG)), name="restores_standard_value"),
    RuleCase("config.protected_fields", "allow", facts(config=TARGET_CHANGE, approval=approval("approved")), name="approved_for_this_hash"),
    RuleCase("config.protected_fields", "deny", facts(config=TARGET_CHANGE), name="no_approval"),
    RuleCase("config.protected_fields", "deny", facts(config=TARGET_CHANGE, approval=approval("pending")), name="pending"),
    RuleCase("config.protected_fields", "deny", facts(config=TARGET_CHANGE, approval=approval("denied")), name="denied"),
    RuleCase("config.protected_fields", "deny", facts(config=TARGET_CHANGE, approval=approval("approved", "b" * 64)), name="approved_other_change"),
    RuleCase("config.protected_fields", "deny", facts(config=TARGET_CHANGE, approval=approval("consumed")), name="consumed"),
    RuleCase("config.protected_fields", "deny", facts(config=changed(data__positive_class="1")), name="string_for_int"),
    RuleCase("config.protected_fields", "deny", facts(config=changed(data__positive_class=True)), name="bool_for_int"),
    RuleCase("config.protected_fields", "deny", facts(config=changed(features={"exclude": []})), name="parent_drops_child"),
    RuleCase("config.protected_fields", "deny", facts(config=None), name="unchecked_when_invalid"),
    RuleCase("config.no_unapproved_overrides", "allow", facts(), name="standard_values"),
    RuleCase(
        "config.no_unapproved_overrides", "allow",
        facts(current=TARGET_CHANGE, config=changed(data__target="churn", experiment__seed=7), in_force={"data.target": '"churn"'}), name="approved_value_in_force",
    ),
    RuleCase("config.no_unapproved_overrides", "deny", facts(current=TARGET_CHANGE, config=changed(data__target="churn", experiment__seed=7)), name="hand_edit"),
    RuleCase(
        "config.no_unapproved_overrides", "deny",
        facts(current=TARGET_CHANGE, config=changed(data__target="churn", experiment__seed=7), in_force={"data.target": '"other"'}), name="hand_edit_to_other_value",
    ),
    RuleCase("config.no_unapproved_overrides", "deny", facts(config=None), name="unchecked_when_invalid"),
    RuleCase("reasoning.required_for_agents", "allow", facts(), name="agent_explains"),
    RuleCase("reasoning.required_for_agents", "allow", facts(principal=HUMAN, reasoning=None), name="human_without"),
    RuleCase("reasoning.required_for_agents", "deny", facts(reasoning=None), name="agent_without"),
    RuleCase("reasoning.required_for_agents", "deny", facts(reasoning={**REASONING, "expected_effect": "better"}), name="too_short"),
    RuleCase("reasoning.required_for_agents", "deny", facts(reasoning={**REASONING, "change_description": "a " * 30}), name="one_word_repeated"),
    RuleCase("reasoning.required_for_agents", "deny", facts(reasoning={**REASONING, "expected_effect": REASONING["change_description"]}), name="copied"),
    RuleCase("reasoning.outcome_from_the_run", "allow", facts(reasoning={**REASONING, "outcome": "pending", "metric_delta": None}), name="pending"),
    RuleCase("reasoning.outcome_from_the_run", "allow", facts(reasoning=None), name="no_reasoning_left_to_required_for_agents"),
    RuleCase("reasoning.outcome_from_the_run", "allow", facts(principal=HUMAN, reasoning={**REASONING, "outcome": "negative"}), name="human_records_an_outcome"),
    RuleCase("reasoning.outcome_from_the_run", "deny", facts(reasoning={**REASONING, "outcome": "confirmed"}), name="agent_claims_confirmed"),
    RuleCase("reasoning.outcome_from_the_run", "deny", facts(reasoning={**REASONING, "metric_delta": 0.05}), name="agent_claims_a_delta"),
    RuleCase("approval.pending_limit", "allow", facts(protected_paths=["data.target"], pending_requested=2), name="under_the_limit"),
    RuleCase("approval.pending_limit", "allow", facts(protected_paths=["data.target"], pending_requested=3, approval=approval("pending")), name="reuses_its_open_approval"),
    RuleCase("approval.pending_limit", "allow", facts(protected_paths=[], pending_requested=3), name="no_protected_change"),
    RuleCase("approval.pending_limit", "deny", facts(protected_paths=["data.target"], pending_requested=3), name="at_the_limit"),
    RuleCase("approval.is_pending", "allow", {"principal": HUMAN, "approval": approval("pending")}, name="pending"),
    RuleCase("approval.is_pending", "deny", {"principal": HUMAN, "approval": approval("approved")}, name="already_approved"),
    RuleCase("approval.is_pending", "deny", {"principal": HUMAN, "approval": approval("consumed")}, name="consumed"),
    RuleCase("approval.is_pending", "deny", {"principal": HUMAN, "approval": None}, name="unknown"),
    RuleCase("approval.four_eyes", "allow", {"principal": HUMAN, "requested_by": {"name": "codex-1", "role": "agent"}}, name="someone_else"),
    RuleCase("approval.four_eyes", "deny", {"principal": HUMAN, "requested_by": {"name": HUMAN.name, "role": "human"}}, name="own_request"),
    RuleCase("approval.four_eyes", "deny", {"principal": HUMAN, "requested_by": None}, name="unknown_requester"),
]


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [(1, 1.0, True), (0.2, 0.2, True), (1, "1", False), (True, 1, False), (False, 0, False), (None, "null", False), ([1, 2], [2, 1], False), ({"a": 1, "b": 2}, {"b": 2, "a": 1}, True)],
)
def test_canonical_value_tells_types_apart_but_not_int_from_integral_float(left: Any, right: Any, same: bool) -> None:
    assert (canonical(left) == canonical(right)) is same


def test_a_missing_protected_field_differs_from_any_value() -> None:
    assert canonical_at({"features": {}}, "features.use_protected_attributes") != canonical(None)
    assert canonical_at({"features": {"use_protected_attributes": None}}, "features.use_protected_attributes") == canonical(None)


def test_protected_changes_name_old_new_and_the_standard_value() -> None:
    found = protected_changes(CONFIG, changed(evaluation__primary_metric="f1"), PROTECTED)
    assert found == [{"path": "evaluation.primary_metric", "old": "roc_auc", "new": "f1", "required": "roc_auc"}]


def test_replacing_a_parent_mapping_that_drops_a_protected_child_is_a_protected_change() -> None:
    found = protected_changes(CONFIG, changed(split={"strategy": "temporal_split", "train_end": "2020-01-01", "validation_end": "2021-01-01"}), PROTECTED)
    assert [f["path"] for f in found] == ["split.test_size"]


def test_unchanged_fields_are_not_deviations_when_they_hold_the_standard_value() -> None:
    assert unapproved_deviations(CONFIG, changed(experiment__seed=1), PROTECTED, {}) == []


def test_protected_field_denial_tells_the_agent_a_human_must_approve() -> None:
    from policies.registry import load_all

    decision = load_all()["config.protected_fields"](facts(config=TARGET_CHANGE), config())
    assert not decision.allowed
    assert "data.target" in decision.reason and '"churn"' in decision.reason
    assert "mlgate approvals approve" in decision.remediation and "Agents cannot approve" in decision.remediation


def test_the_reasoning_denial_holds_only_the_two_texts_to_the_length_and_word_limits() -> None:
    """hypothesis_category is a category name ('baseline'), never held to the length limit."""
    denied = decide_one(load_all()["reasoning.required_for_agents"], facts(reasoning={**REASONING, "expected_effect": "better"}), config())
    assert not denied.allowed and "expected_effect" in denied.reason
    assert "with change_description and expected_effect, each at least " in denied.remediation, denied.remediation
    assert "hypothesis_category, change_description" not in denied.remediation, denied.remediation
    short_category = decide_one(load_all()["reasoning.required_for_agents"], facts(reasoning={**REASONING, "hypothesis_category": "baseline"}), config())
    assert short_category.allowed, short_category


def test_an_unknown_approval_id_is_denied_as_unknown_not_as_already_decided() -> None:
    unknown = load_all()["approval.is_pending"]({"principal": HUMAN, "approval": None}, config())
    decided = load_all()["approval.is_pending"]({"principal": HUMAN, "approval": approval("approved")}, config())
    assert unknown.reason == "no approval has this id" and "final" not in unknown.remediation + unknown.reason
    assert "mlgate approvals list" in unknown.remediation
    assert decided.reason == "the approval is approved; decisions are final"


def test_a_schema_denial_from_a_changed_model_type_says_to_change_the_whole_mapping() -> None:
    variant = load_all()["config.schema_valid"](facts(schema_errors=["model.params.max_depth: unknown field: max_depth is not a parameter of torch_mlp; its parameters are epochs"]), config())
    several = load_all()["config.schema_valid"](facts(schema_errors=["model.params: unknown fields: max_depth, lr are not parameters of torch_mlp; its parameters are epochs"]), config())
    typo = load_all()["config.schema_valid"](facts(schema_errors=["model.parms: unknown field"]), config())
    assert '{"model": {"type": "torch_mlp", "params": {}}}' in variant.remediation
    assert '{"model": {"type": "torch_mlp", "params": {}}}' in several.remediation
    assert "whole mapping" not in typo.remediation and typo.remediation.startswith("fix the listed paths")


def test_a_claimed_result_is_named_in_the_denial_with_how_to_leave_it_to_the_server() -> None:
    denied = decide_one(load_all()["reasoning.outcome_from_the_run"], facts(reasoning={**REASONING, "outcome": "confirmed", "metric_delta": 0.05}), config())
    assert denied.reason == "the reasoning claims a result before the run: outcome='confirmed', metric_delta=0.05"
    assert "get_run" in denied.remediation and "configs/reasoning.yaml" in denied.remediation
