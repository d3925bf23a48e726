"""The one enforcement point: identify → validate → gather → decide → audit → execute → audit.

Every governed tool call passes through `Enforcer.call`, every resource read and prompt get through
`Enforcer.read`; nothing else reaches an adapter. `call` never raises (cancellation aside): a
failure at any stage is audited with its exception type only and answered with a masked error.
Every call ends with a terminal record: an `outcome` record, or the `deny` decision of a call that
ran nothing. A read writes one `read` record (decision and outcome) before its text is released.
Errors become MCP results here (and only here, via server/results.py).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import anyio
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp_types import CallToolResult
from pydantic import BaseModel, ValidationError

from policies import Decision, Verdict, evaluate
from policies.reads import role_may_read
from policies.roles import role_known
from server import results
from server.calls_in_flight import CallsInFlight, TooManyCalls
from server.input_errors import name_hash, validation_denial
from server.tracking_busy import store_refusal
from tools.base import CallContext, ToolSpec
from tools.errors import GovernanceError, NotFound

UNKNOWN = "<unknown>"
READ_RULES = (role_known, role_may_read)
T = TypeVar("T")


class AuditFailed(GovernanceError):
    rule_id = "audit.unavailable"


class AuditSink(Protocol):
    def append(self, record: Mapping[str, Any]) -> Mapping[str, Any]: ...


def args_hash(arguments: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the raw arguments (the audit keeps the hash, not the args)."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Stage:
    """How far a call got: what its outcome record says when something raises."""

    name: str = "validate"
    decision: str = "none"


class Enforcer:
    """Runs governed tool calls and reads. `config_source()` gives the policy config of each call;
    `read_config` (`{"policy": configs/policy.yaml}`) decides reads, so a broken standards file
    never hides the resources that explain it."""

    def __init__(self, audit: AuditSink, config_source: Any, read_config: Mapping[str, Any] | None = None, calls_per_token: int | None = None) -> None:
        self._audit = audit
        self._config_source = config_source
        self._read_config = read_config or {"policy": {}}
        self._in_flight = CallsInFlight(calls_per_token)  # remote tokens' calls running at once

    @property
    def calls_per_token(self) -> int | None:
        """Governed calls one remote token may run at once (None: not counted)."""
        return self._in_flight.limit

    # --- tool calls -------------------------------------------------------------------------------

    async def call(self, spec: ToolSpec, arguments: Mapping[str, Any], ctx: CallContext) -> CallToolResult:
        """Never raises but on cancellation; an audit chain that cannot record refuses the call."""
        base = self._base_record(spec.name, arguments, ctx)
        stage = _Stage()
        try:
            return await self._counted(spec, arguments, ctx, base, stage)
        except AuditFailed as exc:
            return _unrecorded(exc, stage)
        except Exception as exc:  # noqa: BLE001 - whatever broke, the client gets no text of it
            return self._crashed(spec.name, base, stage, store_refusal(exc) or exc)

    async def unknown_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> NoReturn:
        """A call to a name no governed tool has: audited as tool `<unknown>`, then refused with the
        protocol error the spec gives an unknown tool (-32602): the denial's text, its fields as the
        error's data, never the name.
        Raises results.ProtocolRefusal always."""
        decision = Decision.deny("tool.known", "this server has no tool of that name", "list the tools (tools/list) and call one by its exact name")
        record = {**self._base_record(UNKNOWN, arguments, ctx), "name_hash": name_hash(name), "kind": "decision", "decision": "deny"}
        self._append_or_refuse({**record, "rule_ids": [decision.rule_id], "reason": decision.reason})
        raise results.tool_unknown(decision)

    async def _counted(self, spec: ToolSpec, arguments: Mapping[str, Any], ctx: CallContext, base: dict[str, Any], stage: _Stage) -> CallToolResult:
        """_governed, counted against the caller's token; past its limit the call is refused before
        validation, audited as a denial, and nothing runs."""
        try:
            counted = self._in_flight.take(ctx)
        except TooManyCalls as exc:
            return self._refuse(base, exc)
        with counted:
            return await self._governed(spec, arguments, ctx, base, stage)

    async def _governed(self, spec: ToolSpec, arguments: Mapping[str, Any], ctx: CallContext, base: dict[str, Any], stage: _Stage) -> CallToolResult:
        try:
            request = self._validate(spec, arguments)
            stage.name = "gather"
            facts = await self._gather(spec, request, ctx)
        except GovernanceError as exc:
            return self._refuse(base, exc)
        stage.name = "decide"
        verdict = evaluate(spec.rules, facts, ctx.config)
        dry_run = bool(getattr(request, "dry_run", False))
        decided = self._audit_decision(base, verdict, dry_run)
        # Which decision allowed the call: a detached run's worker executes only what it names.
        ctx.audit_refs["decision"] = {"seq": decided.get("seq"), "hash": decided.get("hash"), "args_hash": base["args_hash"]}
        stage.decision = "allow" if verdict.allowed else "deny"
        if not verdict.allowed:
            stage.name = "on_deny" if spec.on_deny is not None and not dry_run else "preview"
            return await self._deny(spec, request, facts, verdict, ctx, base, dry_run)
        stage.name = "preview" if dry_run else "execute"
        if dry_run:
            return await self._dry_run(spec, request, facts, verdict, base)
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

    def _append(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        try:
            return self._audit.append(record) or {}
        except Exception as exc:  # noqa: BLE001 - whatever broke, nothing may run unrecorded
            reason = exc.reason if isinstance(exc, GovernanceError) else f"the audit chain could not record ({type(exc).__name__})"
            raise AuditFailed(reason, "an operator must run `mlgate audit verify` and repair the state directory", rule_id="audit.unavailable") from exc

    def _validate(self, spec: ToolSpec, arguments: Mapping[str, Any]) -> BaseModel:
        try:
            return spec.input_model.model_validate(dict(arguments))
        except ValidationError as exc:
            raise validation_denial(exc, arguments, spec.input_model) from None

    def _who(self, principal: Any, transport: str) -> dict[str, Any]:
        return {
            "principal": principal.name,
            "role": principal.role,
            "transport": transport,
            # The verified token the caller used (`<name>:<id>`), never the token itself.
            **({"credential": principal.credential} if getattr(principal, "credential", None) else {}),
        }

    def _base_record(self, tool: str, arguments: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {**self._who(ctx.principal, ctx.transport), "tool": tool, "args_hash": args_hash(arguments)}

    def _refuse(self, base: dict[str, Any], exc: GovernanceError) -> CallToolResult:
        """A refusal before the policies ran (bad input, missing or corrupt data)."""
        self._append({**base, "kind": "decision", "decision": "deny", "rule_ids": [exc.rule_id], "reason": exc.reason})
        return results.denial(Decision.deny(exc.rule_id, exc.reason, exc.remediation))

    def _audit_decision(self, base: dict[str, Any], verdict: Verdict, dry_run: bool) -> Mapping[str, Any]:
        record = {**base, "kind": "decision", "decision": "allow" if verdict.allowed else "deny"}
        record["rule_ids"] = list(verdict.rule_ids)
        record["denied_by"] = [d.rule_id for d in verdict.denials]
        record["dry_run"] = dry_run
        return self._append(record)

    async def _deny(self, spec, request, facts, verdict: Verdict, ctx, base, dry_run: bool) -> CallToolResult:
        """on_deny and preview read and write files: they run off the event loop."""
        extra: dict[str, Any] = {}
        if spec.on_deny is not None and not dry_run:
            extra = await anyio.to_thread.run_sync(spec.on_deny, request, facts, verdict, ctx)
            self._append({**base, "kind": "outcome", "status": "denied", **_refs(extra)})
        elif dry_run and spec.preview is not None:
            extra = await anyio.to_thread.run_sync(_denied_preview, spec, request, facts)
        return results.denial(verdict.deciding, verdict, extra, dry_run=dry_run)

    async def _dry_run(self, spec, request, facts, verdict: Verdict, base) -> CallToolResult:
        preview = await anyio.to_thread.run_sync(spec.preview, request, facts) if spec.preview is not None else {}
        self._append({**base, "kind": "outcome", "status": "previewed", "dry_run": True})
        return results.success({"decision": "allow", "dry_run": True, "rule_ids": list(verdict.rule_ids), **preview})

    async def _execute(self, spec: ToolSpec, request, facts, ctx: CallContext, base) -> CallToolResult:
        try:
            payload = await spec.execute(request, facts, ctx)
        except GovernanceError as exc:
            return self._failed(base, exc, ctx)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self._append({**base, "kind": "outcome", "status": "cancelled", **_refs(ctx.audit_refs)})
            raise
        except Exception as exc:
            refusal = store_refusal(exc)  # locked or not answering: the agent may retry; the SQL text stays here
            if refusal is not None:
                return self._failed(base, refusal, ctx)
            self._append({**base, "kind": "outcome", "status": "error", "error": type(exc).__name__, **_refs(ctx.audit_refs)})
            return results.internal_error(spec.name)
        self._append({**base, "kind": "outcome", "status": "ok", **_refs({**ctx.audit_refs, **payload})})
        return results.success(payload)

    def _failed(self, base: dict[str, Any], exc: GovernanceError, ctx: CallContext) -> CallToolResult:
        self._append({**base, "kind": "outcome", "status": "failed", "rule_ids": [exc.rule_id], "reason": exc.reason, **_refs(ctx.audit_refs)})
        return results.failure(exc)

    def _crashed(self, tool: str, base: dict[str, Any], stage: _Stage, exc: Exception) -> CallToolResult:
        """Something raised outside execute (gather, on_deny, preview, the store behind them): an
        outcome record with the exception's type and the stage, and a masked error."""
        record = {**base, "kind": "outcome", "stage": stage.name, "decision": stage.decision}
        if isinstance(exc, GovernanceError):
            record.update(status="failed", rule_ids=[exc.rule_id], reason=exc.reason)
        else:
            record.update(status="error", error=type(exc).__name__)
        try:
            self._append(record)
        except AuditFailed as failed:
            return results.denial(Decision.deny(failed.rule_id, failed.reason, failed.remediation))
        if isinstance(exc, GovernanceError):
            return results.failure(exc, decision=stage.decision)
        return results.internal_error(tool, decision=stage.decision)

    # --- resource reads and prompt gets ---------------------------------------------------------

    async def read(self, target: Mapping[str, str], name: str, params: Mapping[str, Any], produce: Callable[[], str], principal: Any, transport: str) -> str:
        """The text `produce()` returns (run off the event loop) once `resources.role` allowed
        `principal` to read `name` and a `read` record holds the decision and the outcome.
        `target` is `{"resource": <uri template>}` or `{"prompt": <name>}`.
        Raises results.ProtocolRefusal: a denial, a not-found, or a masked failure."""
        record = self._allowed_read(target, name, params, principal, transport)
        try:
            text = await anyio.to_thread.run_sync(produce)
        except Exception as exc:  # noqa: BLE001 - recorded by type; the client sees server-written text only
            self._append_or_refuse({**record, **_read_failure(exc)})
            raise results.read_refusal(exc, name) from None
        self._append_or_refuse({**record, "status": "ok"})
        return text

    async def stream(self, target: Mapping[str, str], name: str, params: Mapping[str, Any],
                     serve: Callable[[Callable[[], None]], Awaitable[T]], principal: Any, transport: str) -> T:
        """A read answered by a stream (subscriptions/listen), decided as read() decides. `serve` gets
        `opened`, to call just before the stream's first frame: that appends the `ok` record (and
        raises ProtocolRefusal, ending the stream unsent, when the chain cannot hold it). A stream
        that ends before it opened (the transport refused it, the client went away) is recorded as
        failed and its error passes on unchanged."""
        record, opened = self._allowed_read(target, name, params, principal, transport), False

        def open_stream() -> None:
            nonlocal opened
            self._append_or_refuse({**record, "status": "ok"})
            opened = True

        try:
            return await serve(open_stream)
        except BaseException as exc:
            if not opened:
                self._append_or_refuse({**record, **_read_failure(exc)})
            raise

    def _allowed_read(self, target: Mapping[str, str], name: str, params: Mapping[str, Any], principal: Any, transport: str) -> dict[str, Any]:
        """The read record of an allowed read, not yet appended; a denied one is recorded and raised
        as results.ProtocolRefusal."""
        record = {**self._who(principal, transport), "kind": "read", **target, "args_hash": args_hash(params)}
        verdict = evaluate(READ_RULES, {"principal": principal, "read": name}, self._read_config)
        record.update(decision="allow" if verdict.allowed else "deny", rule_ids=list(verdict.rule_ids))
        if not verdict.allowed:
            self._append_or_refuse({**record, "status": "denied", "denied_by": [d.rule_id for d in verdict.denials]})
            raise results.read_denial(verdict.deciding)
        return record

    async def unknown_read(self, target: str, requested: str, principal: Any, transport: str) -> None:
        """A resource URI or prompt name nothing serves: audited as `<unknown>`, then not found.
        Raises results.ProtocolRefusal always."""
        record = {**self._who(principal, transport), "kind": "read", target: UNKNOWN, "name_hash": name_hash(requested), "args_hash": args_hash({})}
        self._append_or_refuse({**record, "decision": "deny", "rule_ids": [f"{target}s.known"], "status": "not_found"})
        raise results.read_unknown(target, requested)

    def _append_or_refuse(self, record: Mapping[str, Any]) -> None:
        try:
            self._append(record)
        except AuditFailed as exc:
            raise results.read_denial(Decision.deny(exc.rule_id, exc.reason, exc.remediation)) from None


def _unrecorded(exc: AuditFailed, stage: _Stage) -> CallToolResult:
    """Before execute the call is refused; once it executed it cannot be: the agent is told that it
    ran (a denial would invite a retry that runs it again)."""
    if stage.name != "execute":
        return results.denial(Decision.deny(exc.rule_id, exc.reason, exc.remediation))
    ran = AuditFailed(f"the call ran, but its outcome could not be recorded: {exc.reason}", "do not retry it (it would run again); " + exc.remediation, rule_id=exc.rule_id)
    return results.failure(ran)


def _read_failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return {"status": "cancelled"}
    if isinstance(exc, GovernanceError):
        return {"status": "not_found" if isinstance(exc, NotFound) else "failed", "rule_id": exc.rule_id}
    if isinstance(exc, ResourceNotFoundError):
        return {"status": "not_found"}
    return {"status": "error", "error": type(exc).__name__}


def _denied_preview(spec: ToolSpec, request: BaseModel, facts: Any) -> dict[str, Any]:
    """A dry run that would be denied still shows what it would have done (e.g. the diff);
    the preview is informational, so one that cannot describe denied facts adds nothing."""
    try:
        return dict(spec.preview(request, facts))
    except Exception:  # noqa: BLE001 - the denial itself stands either way
        return {}


_REF_KEYS = ("run_id", "commit", "dataset_hash", "approval_id", "change_hash", "content_hash", "sandbox_mode", "lifecycle")


def _refs(values: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance references an audit record carries (never payload data)."""
    return {k: values[k] for k in _REF_KEYS if isinstance(values.get(k), str)}
