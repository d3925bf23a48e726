"""Role limits (DESIGN §4): who may do what, the same on every transport.

Facts are a mapping with a `principal` (policies.principal.Principal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule
from policies.principal import ROLES, Principal

SOURCE = "DESIGN.md §4 roles"


@rule("role.known", source=SOURCE, description="The caller is an identified principal with a known role (agent, human, operator).")
def role_known(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal = facts["principal"]
    if isinstance(principal, Principal) and principal.role in ROLES and principal.name:
        return Decision.allow("role.known", f"{principal.name} acts as {principal.role}")
    return Decision.deny("role.known", "the caller has no known role", "connect with a token issued by `mlgate token create --role agent|human|operator`")


@rule(
    "role.agents_cannot_approve",
    source="DESIGN.md §3 propose_config_change, §4 roles",
    description="Only humans and operators decide approvals; an agent can never approve or deny one, whatever it sends.",
)
def agents_cannot_approve(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal = facts["principal"]
    if isinstance(principal, Principal) and principal.is_human:
        return Decision.allow("role.agents_cannot_approve", f"{principal.role} {principal.name} may decide approvals")
    return Decision.deny(
        "role.agents_cannot_approve",
        "agents cannot approve or deny approvals",
        "ask a human to run `mlgate approvals approve <id>` (or `deny`) at a terminal, then call propose_config_change again",
    )
