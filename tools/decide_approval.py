"""decide_approval: a human or operator approves or denies a pending approval over MCP.

The same rules govern `mlgate approvals approve|deny` at the terminal (server/commands/approvals.py
runs this tool's spec through the enforcement point). An agent is always denied by
role.agents_cannot_approve, whatever it sends; there is no confirm argument anywhere. A human or
operator must also hold a verified token (role.approver_authenticated): over HTTP the bearer token,
at the terminal MLGATE_TOKEN or the prompt, on a stdio server a human started with MLGATE_ROLE the
token in its MLGATE_TOKEN (server/credentials.py TokenHolder). A principal a server was merely
started as (in-memory, or any role without a token) never decides.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec


class DecideApprovalInput(StrictInput):
    approval_id: str = Field(description="The approval to decide, e.g. apr-0123456789ab (from a propose_config_change denial or `mlgate approvals list`).", pattern=r"^apr-[0-9a-f]{12}$")
    decision: Literal["approve", "deny"] = Field(description="approve: the exact change may be applied once; deny: it may not (final).")
    note: str | None = Field(None, description="Why, for the record (kept with the approval).", max_length=500)
    dry_run: bool = Field(False, description="Decide whether this caller may decide it, change nothing.")


def gather(request: DecideApprovalInput, ctx: CallContext) -> dict[str, Any]:
    """The approval as stored (None when unknown: approval.is_pending denies)."""
    record = ctx.ports.approvals.find(request.approval_id)
    summary = None if record is None else {k: record.get(k) for k in ("id", "status", "change_hash", "decided_by")}
    requested_by = None if record is None else record.get("requested_by")
    return {"principal": ctx.principal, "approval": summary, "record": record, "requested_by": requested_by}


def _describe(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "approval_id": record["id"],
        "status": record["status"],
        "change_hash": record["change_hash"],
        "target": record["target"],
        "protected_fields": record["protected_fields"],
        "requested_by": record["requested_by"],
    }


def preview(request: DecideApprovalInput, facts: dict[str, Any]) -> dict[str, Any]:
    described = _describe(facts["record"]) if facts["record"] is not None else {"approval_id": request.approval_id}
    return {**described, "would_set_status": "approved" if request.decision == "approve" else "denied"}


async def execute(request: DecideApprovalInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Record the decision (pending -> approved|denied), re-checked under the store's lock."""
    record = ctx.ports.approvals.decide(
        request.approval_id, approve=request.decision == "approve", approver=ctx.principal, note=request.note, now=ctx.ports.clock.iso()
    )
    ctx.audit_refs.update(approval_id=record["id"], change_hash=record["change_hash"])
    return {**_describe(record), "decided_by": record["decided_by"], "decided_at": record["decided_at"], "credential": record.get("credential")}


_RULES = load_all()
SPEC = ToolSpec(
    name="decide_approval",
    title="Decide an approval (humans and operators)",
    description=(
        "Approve or deny a pending approval for a protected config change. Only principals with the human or "
        "operator role may decide; agents are always denied. Decisions are final; an approval is used once."
    ),
    input_model=DecideApprovalInput,
    rules=tuple(_RULES[r] for r in ("role.known", "role.agents_cannot_approve", "role.approver_authenticated", "approval.is_pending", "approval.four_eyes")),
    gather=gather,
    execute=execute,
    preview=preview,
)
