"""propose_config_change: the only sanctioned way to change configs/experiment.yaml.

Contract of `changes`: a mapping of dotted experiment.yaml paths to new values, e.g.
`{"model.params.max_depth": 6, "evaluation.bootstrap_samples": 500}`. Each value replaces what is
at its path (a mapping value replaces the whole sub-tree; missing parents are created). Paths may
not overlap. The same mapping may be sent as YAML or JSON text; that text is loaded with the
hardened loader (no tags, aliases, merge keys, duplicate keys; size and depth capped).

The patch is applied to the working-tree file, the whole result is validated, and the canonical
diff of typed values decides: protected fields (standards) need a human approval bound to the
SHA-256 of the exact change; everything else is written to the working tree.
"""

from __future__ import annotations

import hashlib
import re
from copy import deepcopy
from typing import Annotated, Any

from pydantic import Field, JsonValue

from policies import Verdict
from policies.config_change import canonical, canonical_at, protected_changes
from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import InvalidInput
from tools.experiment_schema import EXPERIMENT_PATH, REASONING_PATH, ReasoningConfig, validate_experiment
from tools.secrets_scan import secret_kind_of_value

PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}\Z")
MAX_CHANGES = 64
EXPERIMENT_HEADER = "# What to run. Change it with propose_config_change; run_experiment re-checks it every time.\n"
REASONING_HEADER = "# Why. Required for agents on every change and run.\n"
CHANGES_DOC = (
    'A mapping of dotted configs/experiment.yaml paths to new values, e.g. {"model.params.max_depth": 6}. '
    "Each value replaces what is at its path (a mapping replaces the whole sub-tree, e.g. "
    '{"model": {"type": "torch_mlp", "params": {"epochs": 10}}}); paths must not overlap. Keys are lowercase '
    "and case-sensitive; values keep their JSON types (1 is not \"1\"). The same mapping may be sent as YAML "
    "or JSON text (no tags, anchors, merge keys or duplicate keys)."
)
REASONING_DOC = (
    "Why (written to configs/reasoning.yaml): hypothesis_category from the standards' allowed list, "
    "change_description and expected_effect (required for agents, non-trivial)."
)


# Config changes as a mapping of dotted paths, or the same mapping as YAML or JSON text.
Changes = Annotated[dict[str, JsonValue], Field(min_length=1, max_length=MAX_CHANGES)] | Annotated[str, Field(min_length=1, max_length=65536)]


class ProposeConfigChangeInput(StrictInput):
    changes: Changes = Field(description=CHANGES_DOC)
    reasoning: ReasoningConfig | None = Field(None, description=REASONING_DOC)
    dry_run: bool = Field(False, description="Decide and return the diff and the decision, change nothing (no files, no approval).")


# --- pure steps -----------------------------------------------------------------------------


def _bad_changes(reason: str, remediation: str = "send a mapping of dotted experiment.yaml paths to values") -> InvalidInput:
    return InvalidInput(reason, remediation, rule_id="input.changes")


def credential_kinds(document: Any) -> list[str]:
    """The kinds of credential (tools/secrets_scan.py) that keys or string values of `document` look like."""
    kinds: set[str] = set()
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (kind := secret_kind_of_value(item)):
            kinds.add(kind)
    return sorted(kinds)


def refuse_credentials(part: str, document: Any) -> None:
    """Raises InvalidInput (input.credential) when `document` holds credential-looking text. The
    text is never shown: refusals reach results and the audit chain, configs are committed and pushed."""
    kinds = credential_kinds(document)
    if kinds:
        raise InvalidInput(
            f"the {part} {'hold' if part.endswith('s') else 'holds'} text that looks like a credential ({', '.join(kinds)}); it is neither shown nor written",
            "remove tokens, passwords and keys (configs never carry credentials); a long mixed-case name that is no credential can be written in lowercase",
            rule_id="input.credential",
        )


def parse_changes(changes: dict[str, Any] | str, limits: dict[str, Any], files: Any) -> dict[str, Any]:
    """The changes mapping, from an object or hardened YAML/JSON text (`files` is the ConfigFiles
    port, which owns the hardened loader). Raises InvalidInput."""
    if isinstance(changes, str):
        changes = files.parse(changes, limits, "changes")
    else:
        files.check(changes, limits, "changes")
        if len(canonical(changes)) > int(limits["max_bytes"]):
            raise _bad_changes(f"changes are over the {limits['max_bytes']} byte cap", "send fewer or smaller changes")
    refuse_credentials("changes", changes)  # before any refusal below quotes a path
    if len(changes) > MAX_CHANGES:
        raise _bad_changes(f"{len(changes)} paths in one proposal; at most {MAX_CHANGES}", "split the change, or replace a whole section with one path")
    bad = sorted(k for k in changes if not PATH.match(k))
    if bad:
        raise _bad_changes(f"not dotted experiment.yaml paths: {bad[:5]}", 'use paths like "model.params.max_depth"; a list is set whole, e.g. {"evaluation.metrics": ["pr_auc", "roc_auc"]}')
    overlapping = sorted(a for a in changes for b in changes if a != b and b.startswith(a + "."))
    if overlapping:
        raise _bad_changes(f"paths overlap: {overlapping[:5]} and paths beneath them", "set either the parent mapping or its fields, not both")
    return changes


def apply_changes(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` with each path set to its value. Raises InvalidInput when a parent
    on a path is not a mapping."""
    result = deepcopy(document)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = result
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise _bad_changes(f"cannot set {path}: {'.'.join(parents[: depth + 1])} is not a mapping", f"set {'.'.join(parents[: depth + 1])} itself instead")
        node[leaf] = deepcopy(value)
    return result


def _leaves(document: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(document, dict) and document:
        found: dict[str, Any] = {}
        for key, value in document.items():
            found.update(_leaves(value, f"{prefix}{key}."))
        return found
    return {prefix.rstrip("."): document}


def config_diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """[{path, op, old?, new?}] over leaf paths whose canonical typed value differs, sorted by path."""
    old, new = _leaves(before), _leaves(after)
    diff = []
    for path in sorted(old.keys() | new.keys()):
        if path in old and path in new and canonical(old[path]) == canonical(new[path]):
            continue
        entry: dict[str, Any] = {"path": path, "op": "replace" if path in old and path in new else "add" if path in new else "remove"}
        entry.update({k: v[path] for k, v in (("old", old), ("new", new)) if path in v})
        diff.append(entry)
    return diff


def change_hash(diff: list[dict[str, Any]], target: str = EXPERIMENT_PATH) -> str:
    """SHA-256 of the canonical JSON of the validated diff and its target file."""
    return hashlib.sha256(canonical({"target": target, "diff": diff}).encode()).hexdigest()


# --- gather / execute -----------------------------------------------------------------------


def before_and_after(raw: dict[str, Any], changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    """(current config, validated result or None, schema problems). The current config is compared
    in its validated form (defaults filled in) when it validates, as written otherwise."""
    current_model, _ = validate_experiment(raw)
    current = current_model.model_dump(mode="json") if current_model else raw
    model, errors = validate_experiment(apply_changes(raw, changes))
    return current, (model.model_dump(mode="json") if model else None), [_why_missing(e, raw, changes) for e in errors]


def _why_missing(error: str, raw: dict[str, Any], changes: dict[str, Any]) -> str:
    """A required field the file had, dropped because a change gave a mapping for a section above
    it, says so: `{"data": {"dataset": h}}` replaces all of data, which reads as a missing field."""
    path, _, problem = error.partition(": ")
    if problem != "Field required" or not any(p == path or p.startswith(path + ".") for p in _leaves(raw)):
        return error
    replaced = [k for k, v in changes.items() if isinstance(v, dict) and path.startswith(k + ".")]
    if not replaced:
        return error
    dotted = sorted(f"{replaced[0]}.{leaf}" for leaf in _leaves(changes[replaced[0]]))
    return f"{error} (the file has it; the mapping given for {replaced[0]} replaced all of {replaced[0]}: to set only {', '.join(dotted[:3])}, send each by its dotted path)"


def gather(request: ProposeConfigChangeInput, ctx: CallContext) -> dict[str, Any]:
    """Facts for policies/config_change.py. Raises InvalidInput for unreadable changes or files."""
    limits = ctx.config["policy"]["documents"]
    changes = parse_changes(request.changes, limits, ctx.ports.configs)
    refuse_credentials("reasoning", request.reasoning.model_dump(mode="json") if request.reasoning else None)
    raw, base_sha = ctx.ports.configs.read_document(EXPERIMENT_PATH, limits)
    current, config, errors = before_and_after(raw, changes)
    diff = config_diff(current, config) if config is not None else []
    digest = change_hash(diff) if config is not None else None
    live = ctx.ports.approvals.live_for(digest) if digest else None
    protected_paths = _protected_paths(current, config, ctx)
    return {
        "principal": ctx.principal,
        "schema_errors": errors,
        "current": current,
        "config": config,
        "reasoning": request.reasoning.model_dump(mode="json") if request.reasoning else None,
        "diff": diff,
        "change_hash": digest,
        "approval": _summary(live),
        "in_force": ctx.ports.approvals.in_force(),
        "base_sha256": base_sha,
        "protected_paths": protected_paths,
        "pending_requested": _pending_requested(ctx) if protected_paths and live is None else 0,
        "warnings": run_warnings(config, ctx.config["standards"]),
    }


def _pending_requested(ctx: CallContext) -> int:
    """Pending approvals this principal asked for (approval.pending_limit); read only when the call
    would open a new one."""
    return sum(1 for r in ctx.ports.approvals.list("pending") if (r.get("requested_by") or {}).get("name") == ctx.principal.name)


def run_warnings(config: dict[str, Any] | None, standards: dict[str, Any]) -> list[str]:
    """What run_experiment will refuse of this config on some datasets: propose knows no dataset,
    so an agent would otherwise learn it only after committing the change and calling a run."""
    time_column = standards.get("time_column")
    if config is None or not time_column or config["split"]["strategy"] == "temporal_split":
        return []
    return [f"the standards name the time column {time_column!r}: run_experiment denies split.strategy {config['split']['strategy']} "
            "on a dataset that has it (training.temporal_split_when_time); keep temporal_split for such data"]


def _protected_paths(current: dict[str, Any], config: dict[str, Any] | None, ctx: CallContext) -> list[str]:
    if config is None:
        return []
    return [f["path"] for f in protected_changes(current, config, ctx.config["standards"].get("protected_fields") or {})]


def _summary(approval: dict[str, Any] | None) -> dict[str, Any] | None:
    if approval is None:
        return None
    return {k: approval.get(k) for k in ("id", "status", "change_hash", "decided_by")}


def _protected(facts: dict[str, Any], ctx: CallContext) -> list[dict[str, Any]]:
    if facts["config"] is None:
        return []
    return protected_changes(facts["current"], facts["config"], ctx.config["standards"].get("protected_fields") or {})


def preview(request: ProposeConfigChangeInput, facts: dict[str, Any]) -> dict[str, Any]:
    """What would change (dry runs, allowed or denied). A dry run opens no approval, so one that
    changes a protected field without an approval says how to open it."""
    shown = {"target": EXPERIMENT_PATH, "diff": facts["diff"], "change_hash": facts["change_hash"], "schema_errors": facts["schema_errors"], "warnings": facts["warnings"]}
    if request.dry_run and facts.get("protected_paths") and facts["approval"] is None:
        shown["next_step"] = (
            "a dry run opens no approval: send the same call without dry_run; its denial carries the approval_id "
            "a human approves with `mlgate approvals approve <approval_id>`"
        )
    return shown


def _blocked_step(denied: set[str]) -> str:
    others = ", ".join(sorted(denied - {"config.protected_fields"}))
    return f"no approval was opened: fix what {others} names first; a call that only protected fields stand in the way of opens the approval (approval_id)"


def on_deny(request: ProposeConfigChangeInput, facts: dict[str, Any], verdict: Verdict, ctx: CallContext) -> dict[str, Any]:
    """A denial that only protected fields caused opens (or reuses) a pending approval; one that
    other rules deny too says what to fix first."""
    extra = preview(request, facts)
    denied = {d.rule_id for d in verdict.denials}
    if denied != {"config.protected_fields"}:
        return {**extra, "next_step": _blocked_step(denied)} if "config.protected_fields" in denied else extra
    fields = _protected(facts, ctx)
    record, created = ctx.ports.approvals.request(
        change_hash=facts["change_hash"], target=EXPERIMENT_PATH, diff=facts["diff"], fields=fields,
        requester=ctx.principal, reasoning=facts["reasoning"], now=ctx.ports.clock.iso(),
    )
    return {**extra, "approval_id": record["id"], "approval_status": record["status"], "approval_created": created, "next_step": _next_step(record)}


def _next_step(record: dict[str, Any]) -> str:
    if record["status"] == "denied":
        return f"approval {record['id']} for this exact change was denied by {record.get('decided_by')}; propose a different change"
    return f"a human must run `mlgate approvals approve {record['id']}`; then call propose_config_change again with exactly the same changes"


def _override_lines(fields: list[dict[str, Any]], approval: dict[str, Any], now: str) -> list[dict[str, Any]]:
    return [
        {"timestamp": now, "field": f["path"], "old": canonical(f["old"]), "new": canonical(f["new"]), "approver": approval["decided_by"], "config_path": EXPERIMENT_PATH, "approval_id": approval["id"]}
        for f in fields
    ]


def _render(configs: Any, relpath: str, document: dict[str, Any], header: str, ctx: CallContext) -> str:
    """The new file text, keeping the comments of the file it replaces where the port can."""
    render_over = getattr(configs, "render_over", None)
    if render_over is None:
        return configs.render(document, header=header)
    return render_over(relpath, document, ctx.config["policy"]["documents"], header=header)


async def execute(request: ProposeConfigChangeInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Write the change (and the reasoning); consume the approval and log overrides first."""
    result: dict[str, Any] = {"decision": "allow", "target": EXPERIMENT_PATH, "diff": facts["diff"], "change_hash": facts["change_hash"], "warnings": facts["warnings"]}
    ctx.audit_refs["change_hash"] = facts["change_hash"]
    if not facts["diff"]:
        return {**result, "changed": False, "written": []}
    fields, ports, now = _protected(facts, ctx), ctx.ports, ctx.ports.clock.iso()
    files = {EXPERIMENT_PATH: _render(ports.configs, EXPERIMENT_PATH, facts["config"], EXPERIMENT_HEADER, ctx)}
    if facts["reasoning"] is not None:
        files[REASONING_PATH] = _render(ports.configs, REASONING_PATH, facts["reasoning"], REASONING_HEADER, ctx)

    def consume_and_log() -> None:
        if fields:
            approval = ports.approvals.consume(facts["approval"]["id"], facts["change_hash"], now=now)
            ports.overrides.append(_override_lines(fields, approval, now))

    ports.configs.write(files, expected={EXPERIMENT_PATH: facts["base_sha256"]}, before_commit=consume_and_log)
    protected_paths = ctx.config["standards"].get("protected_fields") or {}
    ports.approvals.set_in_force({p: canonical_at(facts["config"], p) for p in protected_paths})
    if fields:
        ctx.audit_refs["approval_id"] = result["approval_id"] = facts["approval"]["id"]
    return {**result, "changed": True, "written": sorted(files), "protected_overrides_logged": len(fields)}


_RULES = load_all()
SPEC = ToolSpec(
    name="propose_config_change",
    title="Propose a config change",
    description=(
        "Change configs/experiment.yaml (and configs/reasoning.yaml). Returns the diff and the decision. "
        "Changing a protected field is denied and opens a pending approval bound to this exact change; a human "
        "approves it out of band (`mlgate approvals approve ID`), then the same call succeeds once. "
        "Use dry_run to see the diff and decision without changing anything."
    ),
    input_model=ProposeConfigChangeInput,
    rules=tuple(
        _RULES[r]
        for r in (
            "role.known", "standards.no_drift", "config.schema_valid", "config.allowed_values",
            "config.protected_fields", "approval.pending_limit", "config.no_unapproved_overrides", "reasoning.required_for_agents",
            "reasoning.outcome_from_the_run",
        )
    ),
    gather=gather,
    execute=execute,
    preview=preview,
    on_deny=on_deny,
)
