from policies import Principal
from policies.registry import load_all
from tests.policies.cases import RuleCase

AGENT, HUMAN, OPERATOR = Principal("codex", "agent"), Principal("alice", "human"), Principal("root-op", "operator")

CASES = [
    RuleCase("role.known", "allow", {"principal": AGENT}, name="agent"),
    RuleCase("role.known", "allow", {"principal": OPERATOR}, name="operator"),
    RuleCase("role.known", "deny", {"principal": Principal("x", "admin")}, name="unknown_role"),  # type: ignore[arg-type]
    RuleCase("role.known", "deny", {"principal": Principal("", "human")}, name="nameless"),
    RuleCase("role.known", "deny", {"principal": "alice"}, name="not_a_principal"),
    RuleCase("role.agents_cannot_approve", "allow", {"principal": HUMAN}, name="human"),
    RuleCase("role.agents_cannot_approve", "allow", {"principal": OPERATOR}, name="operator"),
    RuleCase("role.agents_cannot_approve", "deny", {"principal": AGENT}, name="agent"),
    RuleCase("role.agents_cannot_approve", "deny", {"principal": {"name": "alice", "role": "human"}}, name="forged_mapping"),
    RuleCase("role.approver_authenticated", "allow", {"principal": Principal("alice", "human", "alice:0123456789ab")}, name="human_with_token"),
    RuleCase("role.approver_authenticated", "allow", {"principal": Principal("root-op", "operator", "root-op:0123456789ab")}, name="operator_with_token"),
    RuleCase("role.approver_authenticated", "deny", {"principal": HUMAN}, name="human_started_as_stdio_principal"),
    RuleCase("role.approver_authenticated", "deny", {"principal": Principal("codex", "agent", "codex:0123456789ab")}, name="agent_with_token"),
]


def test_agent_denial_tells_it_to_ask_a_human_at_the_terminal() -> None:
    decision = load_all()["role.agents_cannot_approve"]({"principal": AGENT}, {})
    assert not decision.allowed and "mlgate approvals approve" in decision.remediation
