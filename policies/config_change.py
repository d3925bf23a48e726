"""Rules over a proposed change to configs/experiment.yaml (DESIGN §3 propose_config_change, §9).

Facts are a mapping gathered by tools/propose_config_change.py:

    principal        Principal
    schema_errors    list of "path: problem" (empty when the resulting config validated)
    current          the working-tree config before the change (validated form when it validates)
    config           the validated resulting config (JSON types), None when it did not validate
    reasoning        the reasoning object or None
    change_hash      SHA-256 binding an approval to this exact change
    approval         the live approval for change_hash {id, status, change_hash, decided_by} or None
    in_force         {protected path: canonical value} the server last wrote (approved values)

A protected field changes when its canonical typed value changes: `"1"` vs `1`, `true` vs `1`,
a field dropped by replacing its parent mapping, all count. Moving a protected field back to the
standards' value is never a deviation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from policies.decision import Decision, rule

SOURCE = "DESIGN.md §3 propose_config_change"
ABSENT = "<absent>"
NOT_CHECKED = "the resulting config did not validate, so this rule could not be checked"
FIX_SCHEMA = "fix the problems config.schema_valid lists, then propose again"
# A dotted change of model.type or split.strategy keeps the old variant's fields, which the new one
# refuses (tools/experiment_schema.py): the variant and its fields change together.
VARIANT_FIELDS = ("is not a parameter of", "is not a field of", "are not parameters of", "are not fields of")
WHOLE_MAPPING = (
    "a new model.type or split.strategy takes its own fields: change the whole mapping, e.g. "
    '{"model": {"type": "torch_mlp", "params": {}}} (omitted params take their defaults) or '
    '{"split": {"strategy": "stratified_kfold", "n_splits": 5, "test_size": 0.2}}'
)


def schema_remediation(errors: Sequence[str], fix: str) -> str:
    """`fix`, and how to change a model type or split strategy when the errors come from one."""
    return f"{fix}; {WHOLE_MAPPING}" if any(marker in e for e in errors for marker in VARIANT_FIELDS) else fix


# --- pure helpers (also used by the tool to describe and bind a change) ----------------------


def _plain(value: Any) -> Any:
    """Integral floats compare equal to ints (the schema already fixed the types); bools stay bools."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """Canonical JSON of a value: the identity of a typed value for comparisons and hashes."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def value_at(document: Any, path: str) -> tuple[bool, Any]:
    """(present, value) at a dotted path."""
    node = document
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def canonical_at(document: Any, path: str) -> str:
    present, value = value_at(document, path)
    return canonical(value) if present else ABSENT


def protected_changes(current: Any, new: Any, protected: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Protected paths this change moves to a value other than the standards' value."""
    changes = []
    for path, required in sorted(protected.items()):
        before, after = canonical_at(current, path), canonical_at(new, path)
        if before != after and after != canonical(required):
            changes.append({"path": path, "old": value_at(current, path)[1], "new": value_at(new, path)[1], "required": required})
    return changes


def unapproved_deviations(current: Any, new: Any, protected: Mapping[str, Any], in_force: Mapping[str, str]) -> list[str]:
    """Protected paths this change leaves alone that already hold neither the standards' value nor
    the value the server last wrote (a hand edit behind the server's back)."""
    found = []
    for path, required in sorted(protected.items()):
        before, after = canonical_at(current, path), canonical_at(new, path)
        if before == after and after != canonical(required) and after != in_force.get(path):
            found.append(path)
    return found


def _protected(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return config["standards"].get("protected_fields") or {}


# --- rules ----------------------------------------------------------------------------------


@rule("config.schema_valid", source=SOURCE, description="The resulting configs/experiment.yaml validates against the experiment schema (no unknown keys, no coerced types).")
def schema_valid(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    errors = list(facts["schema_errors"])
    if not errors and facts["config"] is not None:
        return Decision.allow("config.schema_valid", "the resulting config validates")
    listed = "; ".join(errors[:10]) or "no validated config"
    fix = 'fix the listed paths; keys are lowercase and case-sensitive, values keep their types (1 is not "1")'
    return Decision.deny("config.schema_valid", f"the resulting config is invalid: {listed}", schema_remediation(errors, fix))


def _allowed_value_problems(cfg: Mapping[str, Any], reasoning: Any, allowed: Mapping[str, Any]) -> list[str]:
    checks = [
        ("model.type", [cfg["model"]["type"]], "model_types"),
        ("split.strategy", [cfg["split"]["strategy"]], "split_strategies"),
        ("evaluation.primary_metric", [cfg["evaluation"]["primary_metric"]], "metrics"),
        ("evaluation.metrics", cfg["evaluation"]["metrics"], "metrics"),
    ]
    if reasoning is not None:
        checks.append(("reasoning.hypothesis_category", [reasoning["hypothesis_category"]], "hypothesis_categories"))
    return [f"{path}={value!r} (allowed: {allowed[key]})" for path, values, key in checks for value in values if value not in allowed[key]]


@rule("config.allowed_values", source="project_standards.yaml allowed", description="Model type, split strategy, metrics and hypothesis category are among the standards' allowed values.")
def allowed_values(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["config"] is None:
        return Decision.deny("config.allowed_values", NOT_CHECKED, FIX_SCHEMA)
    problems = _allowed_value_problems(facts["config"], facts["reasoning"], config["standards"]["allowed"])
    if not problems:
        return Decision.allow("config.allowed_values", "every value is allowed by the standards")
    return Decision.deny("config.allowed_values", "not allowed by the project standards: " + "; ".join(problems), "choose one of the allowed values listed")


def _approval_grants(approval: Any, change_hash: str) -> bool:
    return isinstance(approval, Mapping) and approval.get("status") == "approved" and approval.get("change_hash") == change_hash


def _approval_state(approval: Any) -> str:
    if not isinstance(approval, Mapping):
        return "no approval exists for this exact change yet"
    if approval.get("status") == "denied":
        return f"approval {approval.get('id')} for this exact change was denied by {approval.get('decided_by')}"
    return f"approval {approval.get('id')} for this exact change is {approval.get('status')}"


@rule(
    "config.protected_fields",
    source="project_standards.yaml protected_fields; DESIGN.md §3",
    description="A change that moves a protected field away from the standards' value needs a human approval bound to the hash of that exact change.",
)
def protected_fields(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["config"] is None:
        return Decision.deny("config.protected_fields", NOT_CHECKED, FIX_SCHEMA)
    changes = protected_changes(facts["current"], facts["config"], _protected(config))
    if not changes:
        return Decision.allow("config.protected_fields", "no protected field moves away from the standards")
    fields = ", ".join(f"{c['path']} {canonical(c['old'])} -> {canonical(c['new'])} (standard {canonical(c['required'])})" for c in changes)
    if _approval_grants(facts["approval"], facts["change_hash"]):
        return Decision.allow("config.protected_fields", f"protected change approved by {facts['approval'].get('decided_by')} in {facts['approval'].get('id')}: {fields}")
    return Decision.deny("config.protected_fields", f"protected fields change: {fields}; {_approval_state(facts['approval'])}", _approval_remedy(facts["approval"]))


def _approval_remedy(approval: Any) -> str:
    if isinstance(approval, Mapping) and approval.get("status") == "denied":
        return "this exact change was refused by a human; propose a different change or discuss it with the approver"
    return (
        "a human or operator must approve this exact change out of band (`mlgate approvals approve <approval_id>`, the id is in this result); "
        "then call propose_config_change again with exactly the same changes. Agents cannot approve."
    )


@rule(
    "config.no_unapproved_overrides",
    source="DESIGN.md §9 trust boundaries",
    description="Protected fields in the working-tree config hold the standards' value or the approved value the server last wrote; hand edits are refused.",
)
def no_unapproved_overrides(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["config"] is None:
        return Decision.deny("config.no_unapproved_overrides", NOT_CHECKED, FIX_SCHEMA)
    paths = unapproved_deviations(facts["current"], facts["config"], _protected(config), facts["in_force"])
    if not paths:
        return Decision.allow("config.no_unapproved_overrides", "no unapproved protected value in the working tree")
    restore = ", ".join(f'"{p}": {canonical(_protected(config)[p])}' for p in paths)
    return Decision.deny(
        "config.no_unapproved_overrides",
        f"configs/experiment.yaml holds protected values nobody approved (edited by hand?): {', '.join(paths)}",
        f"restore them with propose_config_change changes {{{restore}}}, or restore the file from git",
    )


def _trivial(text: Any, min_chars: int, min_words: int) -> bool:
    if not isinstance(text, str):
        return True
    words = text.split()
    return len(" ".join(words)) < min_chars or len({w.lower() for w in words}) < min_words


@rule("reasoning.required_for_agents", source="DESIGN.md §2 reasoning.yaml, §4", description="Agents give reasoning with a non-trivial change_description and expected_effect.")
def reasoning_required_for_agents(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["principal"].is_human:
        return Decision.allow("reasoning.required_for_agents", "reasoning is optional for humans")
    limits = config["policy"]["reasoning"]
    reasoning = facts["reasoning"]
    fields = ("change_description", "expected_effect")
    weak = [f for f in fields if not isinstance(reasoning, Mapping) or _trivial(reasoning.get(f), int(limits["min_chars"]), int(limits["min_words"]))]
    if isinstance(reasoning, Mapping) and not weak and reasoning["change_description"].strip() != reasoning["expected_effect"].strip():
        return Decision.allow("reasoning.required_for_agents", "reasoning given")
    return Decision.deny(
        "reasoning.required_for_agents",
        f"agents must explain the change: {', '.join(weak) or 'change_description and expected_effect must differ'} too short or missing",
        f"pass reasoning with change_description and expected_effect, each at least {limits['min_chars']} characters and {limits['min_words']} "
        "distinct words and different from each other, and a hypothesis_category from the standards' allowed list",
    )


RESULT_FIELDS = ("outcome", "metric_delta")


@rule(
    "reasoning.outcome_from_the_run",
    source="DESIGN.md §2 reasoning.yaml, §3 run_experiment (the server computes every result)",
    description="Agents leave outcome pending and metric_delta empty: the server fills them in from the run it measured.",
)
def outcome_from_the_run(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["principal"].is_human:
        return Decision.allow("reasoning.outcome_from_the_run", "humans may record an outcome")
    reasoning = facts["reasoning"] if isinstance(facts["reasoning"], Mapping) else {}
    claimed = {k: reasoning.get(k) for k in RESULT_FIELDS if reasoning.get(k) not in (None, "pending")}
    if not claimed:
        return Decision.allow("reasoning.outcome_from_the_run", "no result claimed before the run")
    return Decision.deny(
        "reasoning.outcome_from_the_run",
        "the reasoning claims a result before the run: " + ", ".join(f"{k}={v!r}" for k, v in claimed.items()),
        "leave outcome and metric_delta out (outcome: pending, metric_delta: null): the server measures them on every run "
        "and records them (get_run shows them); pass reasoning without them, or restore them in configs/reasoning.yaml",
    )


@rule("approval.is_pending", source="DESIGN.md §3 approvals", description="Only a pending approval can be decided; approved, denied and consumed approvals are final.")
def approval_is_pending(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    approval = facts["approval"]
    if isinstance(approval, Mapping) and approval.get("status") == "pending":
        return Decision.allow("approval.is_pending", f"approval {approval.get('id')} is pending")
    listing = "list pending approvals with `mlgate approvals list`"
    if not isinstance(approval, Mapping):
        return Decision.deny("approval.is_pending", "no approval has this id", f"{listing}; approval ids look like apr-0123456789ab")
    return Decision.deny("approval.is_pending", f"the approval is {approval.get('status')}; decisions are final", f"{listing}; a different change (for a promotion: another run, or the same run once the champion has changed) opens a new approval")


@rule(
    "approval.four_eyes",
    source="four-eyes principle of model risk management",
    description="Whoever asked for an approval cannot grant it: the decider's name differs from the requester's.",
)
def approval_four_eyes(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    requested = (facts.get("requested_by") or {}).get("name")
    decider = facts["principal"].name
    if requested is not None and requested != decider:
        return Decision.allow("approval.four_eyes", f"requested by {requested}, decided by {decider}")
    return Decision.deny(
        "approval.four_eyes",
        f"{decider} requested this approval (or its requester is unknown) and cannot decide it",
        "ask another human or operator to decide it",
    )


@rule(
    "approval.pending_limit",
    source="configs/policy.yaml approvals.max_pending_per_requester",
    description="A protected change opens a new approval only while its requester has fewer than approvals.max_pending_per_requester pending.",
)
def approval_pending_limit(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    """A flood of near-identical requests buries the one a human should read, and every request
    re-reads all of them; a change whose approval is already open reuses it and opens nothing."""
    limit, pending = int(config["policy"]["approvals"]["max_pending_per_requester"]), int(facts["pending_requested"])
    if not facts["protected_paths"] or facts["approval"] is not None or pending < limit:
        return Decision.allow("approval.pending_limit", f"{pending} pending approval(s) requested by {facts['principal'].name} (limit {limit})")
    return Decision.deny(
        "approval.pending_limit",
        f"{facts['principal'].name} already has {pending} pending approvals (limit {limit}); this protected change opens no new one",
        "wait until a human decides the pending ones (`mlgate approvals list`), or propose exactly a change already pending (it reuses its approval)",
    )
