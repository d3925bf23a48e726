"""Rules of the read-only run tools (DESIGN §3: list/compare runs, get a run).

Facts are a mapping gathered by tools/get_run.py and tools/compare_runs.py:

    principal      Principal
    experiment     {name, id}: this workspace's MLflow experiment (id None before its first run)
    runs           [{run_id, experiment_id, ...}]: the runs asked for
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule

SOURCE = "DESIGN.md §3 read-only tools; §6 one MLflow experiment per project"


def _foreign(facts: Mapping[str, Any]) -> list[str]:
    """Ids of the runs that are not in this workspace's experiment (all of them when it has none)."""
    experiment_id = (facts.get("experiment") or {}).get("id")
    return [str(r.get("run_id")) for r in facts["runs"] if experiment_id is None or r.get("experiment_id") != experiment_id]


@rule(
    "runs.same_project",
    source=SOURCE,
    description="Every run read belongs to this workspace's MLflow experiment (<client_name>/<project_name>); runs of other projects are not found here.",
)
def same_project(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    name = (facts.get("experiment") or {}).get("name")
    if not facts["runs"]:
        return Decision.deny("runs.same_project", "no run was named", "pass run ids from list_runs")
    foreign = _foreign(facts)
    if foreign:
        return Decision.deny("runs.same_project", f"no run {', '.join(foreign)} in this project ({name})", "list_runs shows the runs of this project and their ids")
    return Decision.allow("runs.same_project", f"every run belongs to {name}")
