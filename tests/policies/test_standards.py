from typing import Any

from policies.registry import load_all
from tests.policies.cases import RuleCase, config

S1, S2, C1, C2 = "1" * 64, "2" * 64, "a" * 64, "b" * 64


def acknowledgement(standards: str = S1, server_config: str = C1, **extra: Any) -> dict[str, Any]:
    """The `acknowledgement` facts as server/acknowledgement_check.py builds them; acknowledged S1/C1."""
    acknowledged = {"seq": 0, "standards_sha256": S1, "server_config_sha256": C1, "principal": "olga", "role": "operator", "via": "init"}
    return {"protected_ref": "main", "standards_sha256": standards, "server_config_sha256": server_config, "acknowledged": acknowledged, "changes": [], "problem": None, **extra}


CASES = [
    RuleCase("standards.no_drift", "allow", None, config(standards_drift=False), "committed"),
    RuleCase("standards.no_drift", "deny", None, config(standards_drift=True), "edited_working_tree"),
    RuleCase("standards.no_drift", "deny", None, config(standards_drift="no"), "non_bool_is_drift"),
    RuleCase("standards.acknowledged", "allow", None, config(acknowledgement=acknowledgement()), "as_acknowledged"),
    RuleCase("standards.acknowledged", "deny", None, config(acknowledgement=acknowledgement(standards=S2)), "standards_moved"),
    RuleCase("standards.acknowledged", "deny", None, config(acknowledgement=acknowledgement(server_config=C2)), "server_config_moved"),
    RuleCase("standards.acknowledged", "deny", None, config(acknowledgement=acknowledgement(problem="the pin grants nothing")), "unvouched_pin"),
    RuleCase("standards.acknowledged", "deny", None, config(), "no_facts"),
]


def test_unacknowledged_standards_are_denied_naming_the_fields_and_both_hashes() -> None:
    facts = acknowledgement(standards=S2, changes=["standards gates.min_primary_metric: 0.7 -> 0.1"])
    decision = load_all()["standards.acknowledged"](None, config(acknowledgement=facts))
    assert not decision.allowed and "gates.min_primary_metric: 0.7 -> 0.1" in decision.reason
    assert f"standards sha256 {S1} -> {S2}" in decision.reason and "server config" not in decision.reason.split("[")[1]
    assert "mlgate standards accept --workspace DIR" in decision.remediation and "human or operator" in decision.remediation


def test_working_tree_standards_edit_is_denied_as_drift() -> None:
    decision = load_all()["standards.no_drift"](None, config(standards_drift=True))
    assert not decision.allowed and "protected branch" in decision.reason
