"""The enforcement point over the in-memory MCP client, with a tiny governed tool."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import Field, JsonValue, ValidationError

from policies import Decision, Principal, Rule
from server.auth import TOKEN_BYTES, TOKEN_PREFIX
from server.enforcement import Enforcer
from server.input_errors import validation_denial
from server.identity import Identifier
from server.registration import governed_tool
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import IntegrityError

pytestmark = pytest.mark.anyio


class EchoInput(StrictInput):
    text: str = Field(description="text to echo", max_length=20)
    dry_run: bool = Field(False, description="decide only")


def _text_is_polite(facts: dict[str, Any], config: Any) -> Decision:
    if "please" in facts["text"]:
        return Decision.allow("t.polite")
    return Decision.deny("t.polite", "impolite", "say please")


def _gather(request: EchoInput, ctx: CallContext) -> dict[str, Any]:
    if request.text == "corrupt":
        raise IntegrityError("bad bytes", "re-import", rule_id="t.integrity")
    return {"text": request.text}


class Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.executed: list[str] = []

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        self.records.append(dict(record))
        return record


def _server(recorder: Recorder) -> MCPServer:
    async def execute(request: EchoInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        recorder.executed.append(request.text)
        return {"echo": request.text, "principal": ctx.principal.name}

    spec = ToolSpec("echo", "Echo", "echo politely", EchoInput, (Rule("t.polite", "test", "be polite", _text_is_polite),), _gather, execute)
    enforcer = Enforcer(recorder, lambda: {})
    identifier = Identifier(Principal("tester", "agent"), "memory", ports=None)
    return MCPServer("t", tools=[governed_tool(spec, enforcer, identifier)])


async def test_allowed_call_executes_and_audits_decision_then_outcome() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please"})
    assert not result.is_error and result.structured_content == {"echo": "please", "principal": "tester"}
    assert [r["kind"] for r in recorder.records] == ["decision", "outcome"]
    assert recorder.records[0]["decision"] == "allow" and recorder.records[0]["transport"] == "memory"


async def test_denied_call_is_an_error_result_with_rule_and_remediation_and_never_executes() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "now"})
    assert result.is_error
    assert result.structured_content == {"decision": "deny", "rule_id": "t.polite", "reason": "impolite", "remediation": "say please"}
    assert recorder.executed == [] and recorder.records[0]["denied_by"] == ["t.polite"]


async def test_unknown_field_is_denied_as_schema_error_and_audited() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please", "confirm": True})
    assert result.is_error and result.structured_content["rule_id"] == "input.schema"
    assert "confirm" in result.structured_content["reason"]
    assert recorder.executed == [] and recorder.records[0]["decision"] == "deny"


async def test_wrong_type_is_not_coerced() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please", "dry_run": "yes"})
    assert result.is_error and "dry_run" in result.structured_content["reason"]


async def test_dry_run_decides_without_side_effects() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please", "dry_run": True})
    assert not result.is_error and result.structured_content["dry_run"] is True
    assert recorder.executed == [] and [r["kind"] for r in recorder.records] == ["decision", "outcome"]
    assert recorder.records[-1]["status"] == "previewed"


async def test_integrity_failure_while_gathering_is_a_denial() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "corrupt"})
    assert result.is_error and result.structured_content["rule_id"] == "t.integrity"


async def test_tool_schema_forbids_additional_properties() -> None:
    async with Client(_server(Recorder())) as client:
        tools = (await client.list_tools()).tools
    assert tools[0].input_schema["additionalProperties"] is False
    assert tools[0].input_schema["properties"]["text"]["description"] == "text to echo"


class BrokenAudit(Recorder):
    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        raise OSError("disk full")


async def test_a_call_the_audit_chain_cannot_record_is_refused_and_never_executes() -> None:
    recorder = BrokenAudit()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please"})
    assert result.is_error and result.structured_content["rule_id"] == "audit.unavailable"
    assert "audit verify" in result.structured_content["remediation"] and recorder.executed == []


async def test_a_long_or_secret_shaped_unknown_field_name_is_neither_echoed_nor_audited() -> None:
    recorder = Recorder()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please", secret: 1, "n" * 5000: 2, "ok_name": 3})
    reason = result.structured_content["reason"]
    assert result.is_error and result.structured_content["rule_id"] == "input.schema" and "ok_name" in reason
    assert secret not in reason and "n" * 100 not in reason and secret not in str(recorder.records)
    assert reason.count("field #") == 2 and len(str(recorder.records)) < 2000


async def test_a_flood_of_unknown_fields_gives_a_bounded_reason_and_audit_record() -> None:
    recorder = Recorder()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please", **{f"f{i}": i for i in range(5000)}})
    reason = result.structured_content["reason"]
    assert result.is_error and "f0: unknown argument; f1: unknown argument" in reason and "and 4990 more; this tool takes text, dry_run" in reason
    assert len(reason) < 1000 and len(str(recorder.records)) < 2000


class OutcomeUnrecordable(Recorder):
    """Records decisions; the disk fills before the outcome record."""

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["kind"] == "outcome":
            raise OSError("disk full")
        return super().append(record)


async def test_a_call_that_ran_but_whose_outcome_cannot_be_recorded_says_it_ran_and_not_to_retry() -> None:
    recorder = OutcomeUnrecordable()
    async with Client(_server(recorder)) as client:
        result = await client.call_tool("echo", {"text": "please"})
    reply = result.structured_content
    assert recorder.executed == ["please"] and result.is_error
    assert (reply["decision"], reply["status"], reply["rule_id"]) == ("allow", "failed", "audit.unavailable")
    assert "ran" in reply["reason"] and "do not retry" in reply["remediation"] and "audit verify" in reply["remediation"]


class ChangesInput(StrictInput):
    """A mapping or its text, as propose_config_change takes `changes`."""

    changes: Annotated[dict[str, JsonValue], Field(min_length=1)] | Annotated[str, Field(min_length=1)]
    run_ids: Annotated[list[str], Field(min_length=2)] = ["a", "b"]


def _reason_for(arguments: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        ChangesInput.model_validate(arguments)
    return validation_denial(caught.value, arguments).reason


def test_a_schema_error_in_a_union_field_names_the_field_and_what_is_needed_not_pydantic_internals() -> None:
    assert _reason_for({"changes": {}}) == "invalid arguments: changes: at least 1 change is needed"
    assert _reason_for({"changes": {"a": 1}, "run_ids": ["a"]}) == "invalid arguments: run_ids: at least 2 run_ids are needed"
    reason = _reason_for({"changes": 5})  # no member fits: what each would need
    assert reason == "invalid arguments: changes: Input should be a valid dictionary; changes: Input should be a valid string", reason


def _stream_enforcer(records: list[dict[str, Any]]) -> Enforcer:
    class _Sink:
        def append(self, record: dict[str, Any]) -> dict[str, Any]:
            records.append(record)
            return record

    return Enforcer(_Sink(), lambda: {}, read_config={"policy": {"reads": {"subscriptions": ["agent"]}}})


@pytest.mark.anyio
async def test_a_stream_read_is_recorded_ok_only_once_it_opens() -> None:
    records: list[dict[str, Any]] = []
    seen_before_open: list[int] = []

    async def serve(opened: Any) -> str:
        seen_before_open.append(len(records))
        opened()
        return "done"

    answer = await _stream_enforcer(records).stream({"resource": "s"}, "subscriptions", {}, serve, Principal("a", "agent"), "memory")
    assert answer == "done" and seen_before_open == [0] and [r["status"] for r in records] == ["ok"]


@pytest.mark.anyio
async def test_a_stream_cancelled_before_it_opens_is_recorded_cancelled() -> None:
    records: list[dict[str, Any]] = []

    async def serve(opened: Any) -> None:
        await anyio.Event().wait()  # a client that never reads the acknowledgement

    with anyio.move_on_after(0.01):
        await _stream_enforcer(records).stream({"resource": "s"}, "subscriptions", {}, serve, Principal("a", "agent"), "memory")
    assert [(r["decision"], r["status"]) for r in records] == [("allow", "cancelled")]
