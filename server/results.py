"""The one place that turns decisions and errors into MCP tool results."""

from __future__ import annotations

import json
from typing import Any

from mcp_types import CallToolResult, TextContent

from policies import Decision, Verdict
from tools.errors import GovernanceError


def _result(payload: dict[str, Any], *, is_error: bool) -> CallToolResult:
    text = json.dumps(payload, sort_keys=True, default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=payload, is_error=is_error)


def success(payload: dict[str, Any]) -> CallToolResult:
    return _result(payload, is_error=False)


def denial(deciding: Decision, verdict: Verdict | None = None, extra: dict[str, Any] | None = None, *, dry_run: bool = False) -> CallToolResult:
    """`{decision: deny, rule_id, reason, remediation}` plus every denial when several rules denied."""
    payload: dict[str, Any] = {
        "decision": "deny",
        "rule_id": deciding.rule_id,
        "reason": deciding.reason,
        "remediation": deciding.remediation,
    }
    if verdict is not None and len(verdict.denials) > 1:
        payload["denials"] = [{"rule_id": d.rule_id, "reason": d.reason, "remediation": d.remediation} for d in verdict.denials]
    if dry_run:
        payload["dry_run"] = True
    return _result({**payload, **(extra or {})}, is_error=True)


def failure(exc: GovernanceError) -> CallToolResult:
    """An allowed call that failed while executing (integrity, sandbox, git)."""
    return _result({"decision": "allow", "status": "failed", **exc.as_dict()}, is_error=True)


def internal_error(tool: str) -> CallToolResult:
    """An unexpected crash: the type is audited; no text of it reaches the client."""
    reason = f"{tool} failed unexpectedly; the failure is recorded in the audit chain"
    return _result({"decision": "allow", "status": "error", "rule_id": "server.internal", "reason": reason, "remediation": "retry once; if it persists, ask the operator to read the audit tail"}, is_error=True)
