"""runs.same_project: the read-only run tools read this workspace's experiment only."""

from policies import Principal
from tests.policies.cases import RuleCase

AGENT = Principal("codex", "agent")
EXPERIMENT = {"name": "demo-bank/credit-default", "id": "1"}
OURS, OTHERS = {"run_id": "a" * 32, "experiment_id": "1"}, {"run_id": "b" * 32, "experiment_id": "2"}

CASES = [
    RuleCase("runs.same_project", "allow", {"principal": AGENT, "experiment": EXPERIMENT, "runs": [OURS]}, name="own_run"),
    RuleCase("runs.same_project", "allow", {"principal": AGENT, "experiment": EXPERIMENT, "runs": [OURS, {**OURS, "run_id": "c" * 32}]}, name="own_runs"),
    RuleCase("runs.same_project", "deny", {"principal": AGENT, "experiment": EXPERIMENT, "runs": [OTHERS]}, name="other_project"),
    RuleCase("runs.same_project", "deny", {"principal": AGENT, "experiment": EXPERIMENT, "runs": [OURS, OTHERS]}, name="one_foreign_in_a_comparison"),
    RuleCase("runs.same_project", "deny", {"principal": AGENT, "experiment": {"name": "demo-bank/credit-default", "id": None}, "runs": [OURS]}, name="project_never_trained"),
    RuleCase("runs.same_project", "deny", {"principal": AGENT, "experiment": EXPERIMENT, "runs": []}, name="no_runs"),
]
