"""The one enforcement point: identify → validate → gather → decide → audit → execute → audit.

Every governed tool call passes through `Enforcer.call`; nothing else reaches an adapter with a
side effect. Errors become MCP results here (and only here, via server/results.py).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
from mcp_types import CallToolResult
from pydantic import BaseModel, ValidationError

from policies import Decision, Verdict, evaluate
from server import results
from tools.base import CallContext, ToolSpec
from tools.errors import GovernanceError, InvalidInput


class AuditFailed(GovernanceError):
    rule_id = "audit.unavailable"


class AuditSink(Protocol):
    def append(self, record: Mapping[str, Any]) -> Mapping[str, Any]: ...


def args_hash(arguments: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the raw arguments (the audit keeps the hash, not the args)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def validation_denial(exc: ValidationError) -> InvalidInput:
    """Field paths and messages only: rejected values are the caller's data and stay out."""
    problems = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]
    return InvalidInput(
        "invalid arguments: " + "; ".join(problems),
        "fix the listed fields; the tool's input schema lists every field, its type and bounds",
        rule_id="input.schema",
    )


class Enforcer:
    """Runs governed tool calls. `config_source()` gives the policy config for each call."""

    def __init__(self, audit: AuditSink, config_source: Any) -> None:
        self._audit = audit
        self._config_source = config_source

    async def call(self, spec: ToolSpec, arguments: Mapping[str, Any], ctx: CallContext) -> CallToolResult:
        """Never raises for a governed outcome; an audit chain that cannot record refuses the call."""
        base = self._base_record(spec, arguments, ctx)
        try:
            return await self._governed(spec, arguments, ctx, base)
        except AuditFailed as exc:
            return results.denial(Decision.deny(exc.rule_id, exc.reason, exc.remediation))

    async def _governed(self, spec: ToolSpec, arguments: Mapping[str, Any], ctx: CallContext, base: dict[str, Any]) -> CallToolResult:
        try:
            request = self._validate(spec, arguments)
            facts = await self._gather(spec, request, ctx)
        except GovernanceError as exc:
            return self._refuse(base, exc)
        verdict = evaluate(spec.rules, facts, ctx.config)
        dry_run = bool(getattr(request, "dry_run", False))
        self._audit_decision(base, verdict, dry_run)
        if not verdict.allowed:
            return self._deny(spec, request, facts, verdict, ctx, base, dry_run)
        if dry_run:
            return self._dry_run(spec, request, facts, verdict, base)
        return await self._execute(spec, request, facts, ctx, base)

    async def _gather(self, spec: ToolSpec, request: BaseModel, ctx: CallContext) -> Any:
        """Policy config and facts, read off the event loop (git, files and datasets block)."""
        if inspect.iscoroutinefunction(spec.gather):
            ctx.config = await anyio.to_thread.run_sync(self._config_source)
            return await spec.gather(request, ctx)

        def read() -> Any:
            ctx.config = self._config_source()
            return spec.gather(request, ctx)

        return await anyio.to_thread.run_sync(read)

    def _append(self, record: Mapping[str, Any]) -> None:
        try:
            self._audit.append(record)
        except Exception as exc:  # noqa: BLE001 - whatever broke, nothing may run unrecorded
            reason = exc.reason if isinstance(exc, GovernanceError) else f"the audit chain could not record ({type(exc).__name__})"
            raise AuditFailed(reason, "an operator must run `mlgate audit verify` and repair the state directory", rule_id="audit.unavailable") from exc

    def _validate(self, spec: ToolSpec, arguments: Mapping[str, Any]) -> BaseModel:
        try:
            return spec.input_model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise validation_denial(exc) from None

    def _base_record(self, spec: ToolSpec, arguments: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {
            "principal": ctx.principal.name,
            "role": ctx.principal.role,
            "transport": ctx.transport,
            "tool": spec.name,
            "args_hash": args_hash(arguments),
        }

    def _refuse(self, base: dict[str, Any], exc: GovernanceError) -> CallToolResult:
        """A refusal before the policies ran (bad input, missing or corrupt data)."""
        self._append({**base, "kind": "decision", "decision": "deny", "rule_ids": [exc.rule_id], "reason": exc.reason})
        return results.denial(Decision.deny(exc.rule_id, exc.reason, exc.remediation))

    def _audit_decision(self, base: dict[str, Any], verdict: Verdict, dry_run: bool) -> None:
        record = {**base, "kind": "decision", "decision": "allow" if verdict.allowed else "deny"}
        record["rule_ids"] = list(verdict.rule_ids)
        record["denied_by"] = [d.rule_id for d in verdict.denials]
        record["dry_run"] = dry_run
        self._append(record)

    def _deny(self, spec, request, facts, verdict: Verdict, ctx, base, dry_run: bool) -> CallToolResult:
        extra: dict[str, Any] = {}
        if spec.on_deny is not None and not dry_run:
            extra = spec.on_deny(request, facts, verdict, ctx)
            self._append({**base, "kind": "outcome", "status": "denied", **_refs(extra)})
        elif dry_run and spec.preview is not None:
            extra = _denied_preview(spec, request, facts)
        return results.denial(verdict.deciding, verdict, extra, dry_run=dry_run)

    def _dry_run(self, spec, request, facts, verdict: Verdict, base) -> CallToolResult:
        preview = spec.preview(request, facts) if spec.preview is not None else {}
        return results.success({"decision": "allow", "dry_run": True, "rule_ids": list(verdict.rule_ids), **preview})

    async def _execute(self, spec: ToolSpec, request, facts, ctx: CallContext, base) -> CallToolResult:
        try:
            payload = await spec.execute(request, facts, ctx)
        except GovernanceError as exc:
            self._append({**base, "kind": "outcome", "status": "failed", "rule_ids": [exc.rule_id], "reason": exc.reason, **_refs(ctx.audit_refs)})
            return results.failure(exc)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self._append({**base, "kind": "outcome", "status": "cancelled", **_refs(ctx.audit_refs)})
            raise
        except Exception as exc:
            self._append({**base, "kind": "outcome", "status": "error", "error": type(exc).__name__, **_refs(ctx.audit_refs)})
            return results.internal_error(spec.name)
        self._append({**base, "kind": "outcome", "status": "ok", **_refs({**ctx.audit_refs, **payload})})
        return results.success(payload)


def _denied_preview(spec: ToolSpec, request: BaseModel, facts: Any) -> dict[str, Any]:
    """A dry run that would be denied still shows what it would have done (e.g. the diff);
    the preview is informational, so one that cannot describe denied facts adds nothing."""
    try:
        return dict(spec.preview(request, facts))
    except Exception:  # noqa: BLE001 - the denial itself stands either way
        return {}


_REF_KEYS = ("run_id", "commit", "dataset_hash", "approval_id", "change_hash", "content_hash", "sandbox_mode")


def _refs(values: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance references an audit record carries (never payload data)."""
    return {k: values[k] for k in _REF_KEYS if isinstance(values.get(k), str)}
