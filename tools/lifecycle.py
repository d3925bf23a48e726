"""archive_version: a human or operator retires a candidate model version (lifecycle stage archived).

Stages (policies/lifecycle.py) move candidate -> champion -> archived. Promotions and rollbacks
move them as a consequence of moving an alias; this is the one explicit move: a candidate no alias
points at is archived, recorded on the version (`mlgate.stage`), in the alias history's `lifecycle`
list and in the audit chain. The same spec runs for `mlgate models archive MODEL VERSION` at the
terminal (server/commands/models.py), through the same enforcement point.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec


class ArchiveInput(StrictInput):
    model: str = Field(description="Registered model name, e.g. demo-bank-credit-default (see `mlgate models list`).", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
    version: str = Field(description="The version to archive (a candidate no alias points at), e.g. 3.", pattern=r"^[1-9][0-9]{0,8}$")
    note: str | None = Field(None, description="Why, for the record (kept in the alias history).", max_length=500)
    dry_run: bool = Field(False, description="Decide and show the stage change; change nothing.")


def model_name(standards: Mapping[str, Any]) -> str:
    """The registered model of a workspace: `<client_name>-<project_name>`, registry-safe."""
    raw = f"{standards.get('client_name')}-{standards.get('project_name')}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-.")[:200] or "model"


def stage_changes_ref(changes: Sequence[Mapping[str, Any]]) -> str | None:
    """Stage changes as the one-line reference audit records carry, e.g. `v1:champion->archived`."""
    return ",".join(f"v{c['version']}:{c['from'] or 'none'}->{c['to']}" for c in changes) or None


def gather(request: ArchiveInput, ctx: CallContext) -> dict[str, Any]:
    """Raises NotFound for an unknown model or version (a deny)."""
    registry = ctx.ports.registry
    found = registry.version(request.model, request.version)
    lifecycle = {"action": "archive", "version": request.version, "stage": registry.stage(request.model, request.version), "target": "archived", "aliases": found["aliases"]}
    lifecycle["recorded"] = registry.recorded_stage(request.model, request.version)
    return {"principal": ctx.principal, "model": request.model, "own_model": model_name(ctx.config["standards"]), "run_id": found["run_id"], "lifecycle": lifecycle}


def preview(request: ArchiveInput, facts: dict[str, Any]) -> dict[str, Any]:
    return {"model": request.model, "version": request.version, "stage": facts["lifecycle"]["stage"], "would_become": "archived"}


def _archive(request: ArchiveInput, facts: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
    now = ctx.ports.clock.iso()
    event = {"by": ctx.principal.name, "role": ctx.principal.role, "at": now, "note": request.note}
    changes = ctx.ports.registry.archive(request.model, request.version, event)
    ctx.audit_refs.update(run_id=facts["run_id"], lifecycle=stage_changes_ref(changes))
    return {"decision": "allow", "model": request.model, "version": request.version, "run_id": facts["run_id"], "stage": "archived", "stage_changes": changes, "archived_at": now}


async def execute(request: ArchiveInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Archive (re-checked under the registry lock). Raises NotFound when an alias moved onto the
    version since the decision."""
    return await anyio.to_thread.run_sync(_archive, request, facts, ctx)


_RULES = load_all()
SPEC = ToolSpec(
    name="archive_version",
    title="Archive a candidate model version (humans and operators)",
    description=(
        "Retire a candidate model version no alias points at: its lifecycle stage becomes archived (it must be promoted "
        "to candidate again before it can be champion). Humans and operators with a token only; agents are always denied. Audited."
    ),
    input_model=ArchiveInput,
    rules=tuple(_RULES[r] for r in ("role.known", "role.approver_authenticated", "lifecycle.own_model", "lifecycle.transition", "lifecycle.stage_recorded", "lifecycle.archive_unaliased")),
    gather=gather,
    execute=execute,
    preview=preview,
    destructive=True,
)
