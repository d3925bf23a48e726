"""Model lifecycle stages (model-ops standard): candidate -> champion -> archived.

Every registered model version is in one stage, recorded as its `mlgate.stage` tag:

    candidate  registered by a promotion to the candidate alias; eligible for champion
    champion   the version the champion alias points at (one per model)
    archived   a replaced or rolled-back champion, or a candidate a human retired

A version becomes champion only from candidate. A replaced champion is archived by the same move
(not a separate decision: replacing it is what archives it). An archived version goes back to
candidate before it can be champion again, except when a rollback restores the champion the alias
history says was there before. Facts are a mapping with `lifecycle`:

    action    "promote", "rollback" or "archive"
    version   the version that changes stage (None: the run is not registered yet)
    stage     its stage now (None when unregistered)
    target    the stage the action would give it
    aliases   aliases pointing at it now (archive only)
    recorded  the stage mlgate's alias history last gave the version (None: never recorded)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule

SOURCE = "model-ops standard: lifecycle stages (issue 11)"
STAGE_TAG = "mlgate.stage"
STAGES = ("candidate", "champion", "archived")

# (action, target stage) -> the stages a version may be in before it
ALLOWED: dict[tuple[str, str], tuple[str | None, ...]] = {
    ("promote", "candidate"): (None, "candidate", "archived"),
    ("promote", "champion"): ("candidate", "champion"),
    ("rollback", "champion"): ("archived", "candidate", "champion"),
    ("rollback", "candidate"): ("candidate", "champion"),
    ("archive", "archived"): ("candidate",),
}
REMEDIATION = {
    ("promote", "champion"): "promote the run to candidate first (agents may), then a human promotes the candidate to champion",
    ("promote", "candidate"): "the version is the champion already; roll it back or promote another version to champion first",
    ("rollback", "candidate"): "promote the archived version to candidate again instead of rolling back to it",
    ("archive", "archived"): "only candidates are archived by hand; a champion is archived when another version replaces it or a rollback moves the alias back",
}


def stage_of(tags: Mapping[str, Any], aliases: Any) -> str:
    """The stage of a version from its tags; versions registered before stages were recorded count
    as champion when the champion alias holds them, else candidate."""
    recorded = tags.get(STAGE_TAG)
    if recorded in STAGES:
        return str(recorded)
    return "champion" if "champion" in (aliases or ()) else "candidate"


def _describe(lifecycle: Mapping[str, Any]) -> str:
    version = lifecycle.get("version")
    return "the run (not registered yet)" if version is None else f"version {version} ({lifecycle.get('stage')})"


@rule(
    "lifecycle.transition",
    source=SOURCE,
    description="Stages move candidate -> champion -> archived only: champion only from candidate, an archived version back to candidate before champion (rollback restores the previous champion), only candidates archived by hand.",
)
def transition(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    lifecycle = facts["lifecycle"]
    action, target, stage = lifecycle.get("action"), lifecycle.get("target"), lifecycle.get("stage")
    if action == "rollback" and lifecycle.get("version") is None:
        return Decision.allow("lifecycle.transition", "no version to restore (promotion.rollback_available decides)")
    allowed = ALLOWED.get((str(action), str(target)))
    if allowed is not None and stage in allowed:
        return Decision.allow("lifecycle.transition", f"{_describe(lifecycle)} may become {target}")
    return Decision.deny(
        "lifecycle.transition",
        f"{_describe(lifecycle)} cannot become {target} by {action}: stages move candidate -> champion -> archived",
        REMEDIATION.get((str(action), str(target)), "see `mlgate models list` for each version's stage"),
    )


@rule("lifecycle.archive_unaliased", source=SOURCE, description="A version an alias points at is not archived by hand; the alias moves first.")
def archive_unaliased(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    aliases = sorted(facts["lifecycle"].get("aliases") or ())
    if not aliases:
        return Decision.allow("lifecycle.archive_unaliased", "no alias points at the version")
    return Decision.deny(
        "lifecycle.archive_unaliased",
        f"version {facts['lifecycle'].get('version')} is what {', '.join(aliases)} points at",
        "promote another version to that alias (or roll the alias back) first, then archive this one",
    )


@rule(
    "lifecycle.stage_recorded",
    source=SOURCE,
    description="A version's stage tag agrees with the stage mlgate's witnessed alias history last gave it (a tag set or removed outside mlgate is not trusted); a version becomes champion only once that history made it a candidate.",
)
def stage_recorded(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    lifecycle = facts["lifecycle"]
    recorded, stage = lifecycle.get("recorded"), lifecycle.get("stage")
    if recorded is None and (lifecycle.get("action"), lifecycle.get("target")) == ("promote", "champion"):
        # An untagged version reads as a candidate; only one mlgate made a candidate may become champion.
        return Decision.deny(
            "lifecycle.stage_recorded",
            f"version {lifecycle.get('version')} has no stage in mlgate's alias history: it was registered (or made a candidate) outside mlgate",
            "promote the run to candidate through mlgate first (promote with alias candidate), then to champion",
        )
    if recorded is None or recorded == stage:
        return Decision.allow("lifecycle.stage_recorded", "the stage agrees with mlgate's history" if recorded else "no stage recorded in mlgate's history")
    return Decision.deny(
        "lifecycle.stage_recorded",
        f"version {lifecycle.get('version')} is tagged {stage} but mlgate's alias history last made it {recorded}: the stage was changed outside mlgate",
        "an operator restores the mlgate.stage tag from the alias history (`mlgate models list` shows the tag) and checks `mlgate audit verify`",
    )


@rule(
    "lifecycle.own_model",
    source="DESIGN.md §6: a project's registry actions act on its own model",
    description="archive_version and rollback_alias act only on this project's model (<client_name>-<project_name>); a shared tracking store holds other projects' models too.",
)
def own_model(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    model, own = facts["model"], facts["own_model"]
    if isinstance(own, str) and model == own:
        return Decision.allow("lifecycle.own_model", f"{model} is this project's model")
    return Decision.deny(
        "lifecycle.own_model",
        f"{model} is not this project's model ({own})",
        f"act on {own}; another project's model is changed from that project's own workspace and server",
    )
