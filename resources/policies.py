"""The policy rule registry as resources: every rule's id, source and description, and one rule
by id (what an agent reads to understand a denial's rule_id). Read-only."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from policies.registry import describe
from resources.base import ReadContext, ResourceSpec
from tools import strict_json

POLICIES_URI = "mlgate://policies"
RULE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def rule_document(rule_id: str) -> dict[str, str]:
    """One rule's entry. Raises ResourceNotFoundError for an unknown or malformed id."""
    found = [r for r in describe() if r["id"] == rule_id] if RULE_ID.match(rule_id) else []
    if not found:
        raise ResourceNotFoundError(f"no rule {rule_id!r}; {POLICIES_URI} lists every rule id")
    return found[0]


def _all_rules(ctx: ReadContext, params: Mapping[str, str]) -> str:
    return strict_json.dumps(describe(), indent=2, sort_keys=True)


def _one_rule(ctx: ReadContext, params: Mapping[str, str]) -> str:
    return strict_json.dumps(rule_document(str(params["rule_id"])), indent=2, sort_keys=True)


SPECS = (
    ResourceSpec(POLICIES_URI, "policies", "Policy rules", "Every governance rule the server enforces: id, source and description (JSON list).", _all_rules),
    ResourceSpec(POLICIES_URI + "/{rule_id}", "policy_rule", "One policy rule",
                 "One rule by id, e.g. mlgate://policies/config.protected_fields: what it guards and where it comes from.", _one_rule),
)  # fmt: skip
