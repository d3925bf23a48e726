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


@rule(
    "role.approver_authenticated",
    source="DESIGN.md §4 roles (issue 8: approvals need a credential the agent does not hold)",
    description=(
        "Approvals and rollbacks are decided only by a human or operator authenticated with an operator-issued "
        "token (HTTP bearer, the CLI's MLGATE_TOKEN/prompt, or the token a human's stdio server was started with), "
        "never by a role a server was merely started as."
    ),
)
def approver_authenticated(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal = facts["principal"]
    if isinstance(principal, Principal) and principal.is_human and principal.credential:
        return Decision.allow("role.approver_authenticated", f"{principal.name} authenticated with token {principal.credential}")
    return Decision.deny(
        "role.approver_authenticated",
        "deciding needs a human or operator token; this caller presented none",
        "a human runs `mlgate approvals approve <id>` (or `mlgate rollback`) with their own token in MLGATE_TOKEN or at the prompt, "
        "or calls over HTTP with a human token",
    )
