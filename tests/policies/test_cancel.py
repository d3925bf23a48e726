"""cancel.own_run, cancel.running and cancel.worker_here: who may cancel a run, which runs, and where."""

from policies import Principal
from tests.policies.cases import RuleCase

AGENT, OTHER, HUMAN = Principal("codex", "agent"), Principal("claude", "agent"), Principal("risk-officer", "human")
RUN = {"run_id": "a" * 32, "status": "RUNNING", "started_by": "codex", "detached": True}

CASES = [
    RuleCase("cancel.own_run", "allow", {"principal": AGENT, "run": RUN}, name="agent_cancels_its_own_run"),
    RuleCase("cancel.own_run", "allow", {"principal": HUMAN, "run": RUN}, name="human_cancels_any_run"),
    RuleCase("cancel.own_run", "deny", {"principal": OTHER, "run": RUN}, name="agent_cancels_another_agents_run"),
    RuleCase("cancel.running", "allow", {"principal": AGENT, "run": RUN}, name="running_detached"),
    RuleCase("cancel.running", "allow", {"principal": AGENT, "run": {**RUN, "detached": False, "attached_here": True}}, name="running_inside_a_call_of_this_server"),
    RuleCase("cancel.running", "deny", {"principal": AGENT, "run": {**RUN, "status": "FINISHED"}}, name="already_finished"),
    RuleCase("cancel.running", "deny", {"principal": AGENT, "run": {**RUN, "detached": False, "attached_here": True, "status": "KILLED"}}, name="call_already_cancelled"),
    RuleCase("cancel.running", "deny", {"principal": AGENT, "run": {**RUN, "detached": False, "attached_here": False}}, name="run_inside_a_call_of_another_server"),
    RuleCase("cancel.worker_here", "allow", {"principal": AGENT, "run": {**RUN, "worker_elsewhere": False}}, name="worker_on_this_host"),
    RuleCase("cancel.worker_here", "deny", {"principal": AGENT, "run": {**RUN, "worker_elsewhere": True}}, name="worker_of_another_host"),
]
