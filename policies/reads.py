"""Who may read which resource and prompt (DESIGN §4 roles; resources are read-only views).

Facts are a mapping gathered by the enforcement point for every resource read and prompt get:

    principal      Principal
    read           the name the server lists the resource or prompt under (e.g. `audit_tail`)

The roles allowed per name are configs/policy.yaml `reads`; a name missing there is readable by
nobody, so a resource added without a line in that table fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule
from policies.principal import Principal

SOURCE = "DESIGN.md §4 roles; configs/policy.yaml reads"


def _readers(config: Mapping[str, Any], name: str) -> list[str]:
    table = (config.get("policy") or {}).get("reads") or {}
    roles = table.get(name) if isinstance(table, Mapping) else None
    return [str(r) for r in roles] if isinstance(roles, list) else []


@rule(
    "resources.role",
    source=SOURCE,
    description="A resource or prompt is read only by the roles configs/policy.yaml `reads` lists for it (the full audit tail: humans and operators; agents read their own records).",
)
def role_may_read(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal, name = facts["principal"], str(facts.get("read") or "")
    readers = _readers(config, name)
    if isinstance(principal, Principal) and principal.role in readers:
        return Decision.allow("resources.role", f"{principal.role} may read {name}")
    role = principal.role if isinstance(principal, Principal) else "unknown"
    if not readers:
        return Decision.deny("resources.role", f"{name or 'this resource'} is readable by no role", "ask the operator to list it under `reads` in configs/policy.yaml")
    return Decision.deny("resources.role", f"the {role} role may not read {name} (readable by: {', '.join(readers)})", "read what your role may read (resources/list); ask a human or operator for this one")
