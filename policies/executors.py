"""Rules about where the training child runs (server/executors.py: the local sandbox or Ray).

Facts, gathered by the tools that train (run_experiment, reproduce):

    executor_backend   "local" | "ray"
    sandbox_mode       how the child is confined where it runs: "bwrap" | "unconfined" (for Ray,
                       as a worker of the cluster reports it)
    sandbox_available  False when nothing can run the child (for Ray: no worker answered)

Config: configs/policy.yaml `executor.ray_allow_unconfined`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule

SOURCE = "issue 12 executor backends"


@rule(
    "executor.isolation",
    source=SOURCE,
    description=(
        "On the Ray backend the untrusted src/features.py runs only inside bubblewrap on the worker node; "
        "an unconfined Ray worker (the cluster's user, network and credentials) only when executor.ray_allow_unconfined is true."
    ),
)
def isolation(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts.get("executor_backend", "local") == "local":
        return Decision.allow("executor.isolation", "the local sandbox runs the child (sandbox.available applies)")
    if facts.get("sandbox_available") is not True:
        return Decision.deny("executor.isolation", "no Ray worker answered, so the training child cannot be confined",
                             "ask the operator to check executor.ray.address and that the Ray cluster is up")
    if facts.get("sandbox_mode") == "bwrap":
        return Decision.allow("executor.isolation", "the Ray worker runs the child inside bubblewrap")
    if (config["policy"].get("executor") or {}).get("ray_allow_unconfined") is True:
        return Decision.allow("executor.isolation", "an unconfined Ray worker is explicitly allowed (audited)")
    return Decision.deny(
        "executor.isolation",
        "the Ray worker cannot wrap the training child in bubblewrap: src/features.py would run as the Ray cluster's user, "
        "with its network and credentials",
        "ask the operator to install bubblewrap on the Ray nodes, or to run training with executor.backend: local",
    )
