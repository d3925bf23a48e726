"""Who may read history beyond their own project (query_reasoning, cost_report).

Facts: `principal` (policies.principal.Principal) and `scope` ("project" or "all").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule
from policies.principal import Principal


@rule(
    "queries.cross_project",
    source="DESIGN.md §4 roles; seed 001 §7.2-7.3 (reasoning and cost across projects)",
    description=(
        "Reasoning and cost queries across every project of the tracking store are for authenticated humans and "
        "operators; agents (and unauthenticated callers) query their own project only."
    ),
)
def cross_project(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal = facts["principal"]
    if facts["scope"] == "project":
        return Decision.allow("queries.cross_project", "the query reads this project only")
    if isinstance(principal, Principal) and principal.is_human and principal.credential:
        return Decision.allow("queries.cross_project", f"{principal.role} {principal.name} may query every project")
    return Decision.deny(
        "queries.cross_project",
        "queries across projects are for authenticated humans and operators",
        "query with scope 'project' (this project's history), or ask a human to run `mlgate insights` with their token",
    )
