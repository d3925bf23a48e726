"""promote's move: the alias moved under the registry's lock, the approval spent by that move only,
then the model card and the run's tags, and a promotion cut short after its move finished by the
next call (tools/promote.py gathers and decides; this module runs once the gates passed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from policies.promotion import receipt
from tools.base import CallContext
from tools.lifecycle import stage_changes_ref
from tools.model_card import card_tags, model_card

if TYPE_CHECKING:
    from tools.promote import PromoteInput

CARD_ARTIFACT = "model_card.json"
REPORT_ARTIFACT = "evaluation_report.json"


def _card(request: PromoteInput, facts: Mapping[str, Any], ctx: CallContext, version: str, approvals: list[dict[str, Any]], event: Mapping[str, Any]) -> dict[str, Any]:
    report = ctx.ports.run_artifacts.read_json(request.run_id, REPORT_ARTIFACT) if ctx.ports.run_artifacts is not None else None
    reproduction = facts["reproduction"] or {}
    full = receipt({**facts, "metric_gates": facts["sealed_metric_gates"]}, ctx.config)
    return model_card({
        "model": facts["model"], "version": version, "alias": request.alias, "run": facts["run"], "standards": ctx.config["standards"],
        "report": report, "receipt": full, "approvals": approvals, "test_queries": facts.get("test_queries"), "promoted_by": {"name": event.get("by"), "role": event.get("role")},
        "promoted_at": event.get("at"), "reproduction": {"reproduced": reproduction.get("recorded"), "run_id": reproduction.get("run_id"), "seed_runs": facts["seed_runs"]},
    })  # fmt: skip


def _approvals_used(request: PromoteInput, facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The approval this promotion spends: a champion's, approved; none for a candidate."""
    approval = facts["approval"]
    if request.alias != "champion" or not approval or approval.get("status") != "approved":
        return []
    return [{"id": approval["id"], "decided_by": approval["decided_by"], "decided_at": approval.get("decided_at")}]


def _consumer(facts: Mapping[str, Any], ctx: CallContext, approvals: list[dict[str, Any]], now: str) -> Callable[[], None]:
    def consume() -> None:
        for approval in approvals:
            ctx.ports.approvals.consume(approval["id"], facts["approval"]["change_hash"], now=now)
            ctx.audit_refs["approval_id"] = approval["id"]

    return consume


def _record_promotion(request: PromoteInput, facts: Mapping[str, Any], ctx: CallContext, version: str, approvals: list[dict[str, Any]], event: Mapping[str, Any]) -> None:
    """What follows the alias move: the card on the version and the run, then the run's tags. The
    run's `mlgate.promoted.<alias>` tag is written last: a promotion without it is unfinished."""
    card = _card(request, facts, ctx, version, approvals, event)
    ctx.ports.registry.set_version_tags(facts["model"], version, card_tags(card))
    ctx.ports.tracking.log_json_artifact(request.run_id, CARD_ARTIFACT, card)
    ctx.ports.tracking.set_tags(request.run_id, {"promoted": "true", f"mlgate.promoted.{request.alias}": f"{facts['model']}/{version}"})


def _finish_unrecorded(request: PromoteInput, facts: Mapping[str, Any], ctx: CallContext, version: str) -> bool:
    """A promotion whose alias moved but whose card or tags were not written (a failure after the
    move): written now from the recorded move (who, when, which approvals). False when it was whole."""
    if facts["run"].get("tags", {}).get(f"mlgate.promoted.{request.alias}") == f"{facts['model']}/{version}":
        return False
    event = (ctx.ports.registry.events(facts["model"], request.alias) or [{}])[-1]
    found = [ctx.ports.approvals.find(str(i)) for i in event.get("approvals") or []]
    approvals = [{"id": a["id"], "decided_by": a.get("decided_by"), "decided_at": a.get("decided_at")} for a in found if a]
    _record_promotion(request, facts, ctx, version, approvals, event)
    return True


def promote_run(request: PromoteInput, facts: Mapping[str, Any], ctx: CallContext, result: dict[str, Any]) -> dict[str, Any]:
    """Registers the run's model (once), moves the alias under the registry's lock (refused when it
    no longer stands where the gates and approval found it; the approval is spent by the move
    only), then writes the card and tags. `result` is the receipt summary the answer starts from."""
    registry, now, run = ctx.ports.registry, ctx.ports.clock.iso(), facts["run"]
    version = facts["run_version"]
    if version is not None and facts["alias_version"] == version and registry.stack(facts["model"], request.alias)[-1:] == [version]:
        finished = _finish_unrecorded(request, facts, ctx, version)
        return {**result, "version": version, "created": False, "changed": False, **({"model_card": CARD_ARTIFACT, "finished": True} if finished else {})}
    approvals, created = _approvals_used(request, facts), version is None
    if created:
        version = registry.register(facts["model"], request.run_id, run["artifact_uri"], {"mlgate.run_id": request.run_id})
    event = {"run_id": request.run_id, "by": ctx.principal.name, "role": ctx.principal.role, "at": now, "approvals": [a["id"] for a in approvals]}
    stages = registry.point(facts["model"], request.alias, version, event, replacing=facts["replacing"], claim=_consumer(facts, ctx, approvals, now))
    ctx.audit_refs["lifecycle"] = stage_changes_ref(stages)
    _record_promotion(request, facts, ctx, version, approvals, event)
    return {**result, "version": version, "created": created, "changed": True, "model_card": CARD_ARTIFACT, "promotion_timestamp": now, "stage_changes": stages}
