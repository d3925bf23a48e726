"""resources.role: who may read which resource and prompt, from configs/policy.yaml `reads`."""

from policies import Principal
from server.settings import policy_limits
from tests.policies.cases import BASE_POLICY, RuleCase, config

AGENT, HUMAN, OPERATOR = Principal("codex", "agent"), Principal("alice", "human"), Principal("ops", "operator")
READS = {"standards": ["agent", "human", "operator"], "audit_tail": ["human", "operator"], "audit_mine": ["agent", "human", "operator"]}
POLICY = config(policy={**BASE_POLICY, "reads": READS})

CASES = [
    RuleCase("resources.role", "allow", {"principal": AGENT, "read": "standards"}, POLICY, name="agent_reads_standards"),
    RuleCase("resources.role", "allow", {"principal": HUMAN, "read": "audit_tail"}, POLICY, name="human_reads_audit_tail"),
    RuleCase("resources.role", "allow", {"principal": AGENT, "read": "audit_mine"}, POLICY, name="agent_reads_own_records"),
    RuleCase("resources.role", "deny", {"principal": AGENT, "read": "audit_tail"}, POLICY, name="agent_reads_audit_tail"),
    RuleCase("resources.role", "deny", {"principal": OPERATOR, "read": "unlisted"}, POLICY, name="unlisted_name_fails_closed"),
    RuleCase("resources.role", "deny", {"principal": "not-a-principal", "read": "standards"}, POLICY, name="no_principal"),
    RuleCase("resources.role", "deny", {"principal": HUMAN, "read": "standards"}, config(), name="no_reads_table"),
]


def test_the_shipped_table_keeps_the_full_audit_tail_from_agents() -> None:
    reads = policy_limits()["reads"]
    assert "agent" not in reads["audit_tail"] and {"human", "operator"} <= set(reads["audit_tail"])
    assert all(set(roles) <= {"agent", "human", "operator"} for roles in reads.values())
