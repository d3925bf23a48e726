from policies import Principal
from tests.policies.cases import RuleCase

AGENT = Principal("codex", "agent")
HUMAN_WITH_TOKEN = Principal("alice", "human", "alice:0123456789ab")

CASES = [
    RuleCase("queries.cross_project", "allow", {"principal": AGENT, "scope": "project"}, name="agent_own_project"),
    RuleCase("queries.cross_project", "allow", {"principal": HUMAN_WITH_TOKEN, "scope": "all"}, name="authenticated_human_all"),
    RuleCase("queries.cross_project", "allow", {"principal": Principal("op", "operator", "op:0123456789ab"), "scope": "all"}, name="authenticated_operator_all"),
    RuleCase("queries.cross_project", "deny", {"principal": AGENT, "scope": "all"}, name="agent_all"),
    RuleCase("queries.cross_project", "deny", {"principal": Principal("alice", "human"), "scope": "all"}, name="human_without_token_all"),
    RuleCase("queries.cross_project", "deny", {"principal": Principal("codex", "agent", "codex:0123456789ab"), "scope": "all"}, name="agent_with_token_all"),
]
