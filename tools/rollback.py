"""rollback_alias: a human or operator points a model alias back at its previous version.

The previous version comes from the alias history mlgate keeps (server/registry.py), not from
guesswork over version numbers; a rollback is refused when the alias was moved outside mlgate.
The same spec runs for `mlgate rollback MODEL` at the terminal (server/commands/models.py), through
the same enforcement point, so both are decided by the same rules and audited alike.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.lifecycle import model_name, stage_changes_ref


class RollbackInput(StrictInput):
    model: str = Field(description="Registered model name, e.g. demo-bank-credit-default (see `mlgate models list`).", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
    alias: Literal["candidate", "champion"] = Field("champion", description="The alias to move back to the version it pointed at before.")
    note: str | None = Field(None, description="Why, for the record (kept in the alias history and on the version).", max_length=500)
    dry_run: bool = Field(False, description="Decide and show which version the alias would return to; change nothing.")


def gather(request: RollbackInput, ctx: CallContext) -> dict[str, Any]:
    registry = ctx.ports.registry
    stack = registry.stack(request.model, request.alias)
    restored = stack[-2] if len(stack) >= 2 else None
    return {
        "principal": ctx.principal,
        "model": request.model,
        "own_model": model_name(ctx.config["standards"]),
        "alias": request.alias,
        "stack": stack,
        "alias_version": registry.alias_version(request.model, request.alias),
        "lifecycle": {"action": "rollback", "version": restored, "stage": registry.stage(request.model, restored), "recorded": registry.recorded_stage(request.model, restored), "target": request.alias},
    }


def preview(request: RollbackInput, facts: dict[str, Any]) -> dict[str, Any]:
    stack = facts["stack"]
    return {"model": request.model, "alias": request.alias, "current_version": facts["alias_version"], "would_return_to": stack[-2] if len(stack) >= 2 else None}


def _roll_back(request: RollbackInput, ctx: CallContext) -> dict[str, Any]:
    registry, now = ctx.ports.registry, ctx.ports.clock.iso()
    event = {"by": ctx.principal.name, "role": ctx.principal.role, "at": now, "note": request.note}
    from_version, to_version, stages = registry.roll_back(request.model, request.alias, event)
    registry.set_version_tags(request.model, from_version, {f"mlgate.rolled_back.{request.alias}": now})
    restored = registry.version(request.model, to_version)
    ctx.audit_refs.update(run_id=restored["run_id"], lifecycle=stage_changes_ref(stages))
    return {"decision": "allow", "model": request.model, "alias": request.alias, "from_version": from_version, "to_version": to_version, "run_id": restored["run_id"], "rolled_back_at": now, "stage_changes": stages}


async def execute(request: RollbackInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Move the alias back (re-checked under the registry lock). Raises NotFound when the history
    changed since the decision."""
    return await anyio.to_thread.run_sync(_roll_back, request, ctx)


_RULES = load_all()
SPEC = ToolSpec(
    name="rollback_alias",
    title="Roll a model alias back (humans and operators)",
    description=(
        "Point a model alias (champion or candidate) back at the version it pointed at before the last promotion, "
        "from mlgate's alias history; a champion rolled back from is archived, the one restored is champion again. Humans and operators only; agents are always denied. Audited like every call."
    ),
    input_model=RollbackInput,
    rules=tuple(_RULES[r] for r in ("role.known", "role.agents_cannot_rollback", "role.approver_authenticated", "lifecycle.own_model", "promotion.rollback_available", "lifecycle.transition", "lifecycle.stage_recorded")),
    gather=gather,
    execute=execute,
    preview=preview,
    destructive=True,
)
