from policies.registry import load_all
from tests.policies.cases import RuleCase, config

CASES = [
    RuleCase("standards.no_drift", "allow", None, config(standards_drift=False), "committed"),
    RuleCase("standards.no_drift", "deny", None, config(standards_drift=True), "edited_working_tree"),
    RuleCase("standards.no_drift", "deny", None, config(standards_drift="no"), "non_bool_is_drift"),
]


def test_working_tree_standards_edit_is_denied_as_drift() -> None:
    decision = load_all()["standards.no_drift"](None, config(standards_drift=True))
    assert not decision.allowed and "protected branch" in decision.reason
