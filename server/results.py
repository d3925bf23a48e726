"""The one place that turns decisions and errors into MCP results: tool results, and the error
text of refused resource reads and prompt gets."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp_types import CallToolResult, TextContent

from policies import Decision, Verdict
from tools.errors import GovernanceError, NotFound
from tools.strict_json import finite


def _result(payload: dict[str, Any], *, is_error: bool) -> CallToolResult:
    payload = finite(payload)  # NaN is not JSON: null in the text, as in structured content
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


def _decided(decision: str) -> str:
    """A call that failed before it was decided was not allowed: it reads as a denial."""
    return "allow" if decision == "allow" else "deny"


def failure(exc: GovernanceError, *, decision: str = "allow") -> CallToolResult:
    """A call that failed with a governed error (integrity, sandbox, git, approvals)."""
    return _result({"decision": _decided(decision), "status": "failed", **exc.as_dict()}, is_error=True)


def internal_error(tool: str, *, decision: str = "allow") -> CallToolResult:
    """An unexpected crash: the type is audited; no text of it reaches the client."""
    reason = f"{tool} failed unexpectedly; the failure is recorded in the audit chain"
    return _result({"decision": _decided(decision), "status": "error", "rule_id": "server.internal", "reason": reason, "remediation": "retry once; if it persists, ask the operator to read the audit tail"}, is_error=True)


# --- resource reads, prompt gets and unknown tools: answered with protocol errors -------------


class ProtocolRefusal(Exception):
    """A request answered with an MCP error rather than a result (a read that serves no text, a
    tool name nothing serves): `text` is server-written; `not_found` picks the MCP error code;
    `data`, the error's data, carries a denial's fields as a denied tool call's result does."""

    def __init__(self, text: str, *, not_found: bool = False, data: dict[str, Any] | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.not_found = not_found
        self.data = data


def _governed_text(rule_id: str, reason: str, remediation: str) -> str:
    return f"[{rule_id}] {reason}; what to do: {remediation}"


def read_denial(deciding: Decision) -> ProtocolRefusal:
    return ProtocolRefusal(_governed_text(deciding.rule_id, deciding.reason, deciding.remediation))


def tool_unknown(deciding: Decision) -> ProtocolRefusal:
    """The refusal of a tool name nothing serves: its text and, as the error's data, the fields a
    denied call's result carries ({decision, rule_id, reason, remediation})."""
    fields = {"decision": "deny", "rule_id": deciding.rule_id, "reason": deciding.reason, "remediation": deciding.remediation}
    return ProtocolRefusal(_governed_text(deciding.rule_id, deciding.reason, deciding.remediation), not_found=True, data=fields)


def read_refusal(exc: Exception, name: str) -> ProtocolRefusal:
    """A read function that raised: a governed error or an SDK not-found keeps its server-written
    text; anything else is masked (its type is in the audit record)."""
    if isinstance(exc, GovernanceError):
        return ProtocolRefusal(_governed_text(exc.rule_id, exc.reason, exc.remediation), not_found=isinstance(exc, NotFound))
    if isinstance(exc, ResourceNotFoundError):
        return ProtocolRefusal(str(exc), not_found=True)
    reason = f"{name} could not be read; the failure is recorded in the audit chain"
    return ProtocolRefusal(_governed_text("server.internal", reason, "retry once; if it persists, ask the operator to read the audit tail"))


def read_unknown(target: str, requested: str) -> ProtocolRefusal:
    """Nothing serves `requested`; it is the caller's own text, echoed clipped and on one line."""
    shown = repr(str(requested)[:80])
    listing = "resources/list and resources/templates/list" if target == "resource" else "prompts/list"
    return ProtocolRefusal(f"Unknown {target}: {shown}; {listing} name what this server serves", not_found=True)
