"""The policy rule registry as resources: every rule's id, source and description, and one rule
by id (what an agent reads to understand a denial's rule_id). Read-only."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from policies.registry import describe

POLICIES_URI = "mlgate://policies"
RULE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def rule_document(rule_id: str) -> dict[str, str]:
    """One rule's entry. Raises ResourceNotFoundError for an unknown or malformed id."""
    found = [r for r in describe() if r["id"] == rule_id] if RULE_ID.match(rule_id) else []
    if not found:
        raise ResourceNotFoundError(f"no rule {rule_id!r}; {POLICIES_URI} lists every rule id")
    return found[0]


def register(server: Any, ports: Any) -> None:
    @server.resource(POLICIES_URI, name="policies", title="Policy rules", mime_type="application/json",
                     description="Every governance rule the server enforces: id, source and description (JSON list).")
    async def policies() -> str:
        return json.dumps(describe(), indent=2, sort_keys=True)

    @server.resource(POLICIES_URI + "/{rule_id}", name="policy_rule", title="One policy rule", mime_type="application/json",
                     description="One rule by id, e.g. mlgate://policies/config.protected_fields: what it guards and where it comes from.")
    async def policy_rule(rule_id: str) -> str:
        return json.dumps(rule_document(rule_id), indent=2, sort_keys=True)
