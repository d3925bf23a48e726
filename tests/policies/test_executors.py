"""executor.isolation: the Ray backend runs untrusted features.py only inside bubblewrap."""

from tests.policies.cases import BASE_POLICY, RuleCase, config

RAY = {"executor_backend": "ray", "sandbox_mode": "bwrap", "sandbox_available": True}
ALLOWING = config(policy={**BASE_POLICY, "executor": {"ray_allow_unconfined": True}})

CASES = [
    RuleCase("executor.isolation", "allow", {**RAY, "executor_backend": "local", "sandbox_mode": "unconfined"}, name="local_backend_left_to_sandbox_available"),
    RuleCase("executor.isolation", "allow", RAY, name="ray_worker_wraps_in_bwrap"),
    RuleCase("executor.isolation", "allow", {**RAY, "sandbox_mode": "unconfined"}, ALLOWING, name="unconfined_ray_worker_explicitly_allowed"),
    RuleCase("executor.isolation", "deny", {**RAY, "sandbox_mode": "unconfined"}, name="unconfined_ray_worker"),
    RuleCase("executor.isolation", "deny", {**RAY, "sandbox_mode": "bwrap", "sandbox_available": False}, name="no_ray_worker_answered"),
    RuleCase("executor.isolation", "deny", {**RAY, "sandbox_mode": "unconfined"}, config(policy={**BASE_POLICY, "executor": {"ray_allow_unconfined": "yes"}}),
             name="allowance_must_be_literally_true"),
]
