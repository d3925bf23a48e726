"""Attacks on the enforcement point, performed for real through MCP clients (issue 8 items 10-11).

Resources and prompts: every read is role-checked and audited, and reading creates nothing.
Tool calls: nothing a tool's hooks or its stores raise reaches the client as text, every failure
leaves an outcome record, and names nothing serves are audited too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from policies import Decision, Principal, Rule
from server.app import build_server
from server.audit import AuditChain, read_tail, verify
from server.enforcement import Enforcer
from server.identity import Identifier
from server.registration import GovernedServer
from server.settings import Settings, load_settings
from tools.base import CallContext, StrictInput, ToolSpec

pytestmark = pytest.mark.anyio
SECRET_PATH = "/srv/secret-state/approvals/0042.json"
TIMEOUT_S = 60


def operator(workspace: Path) -> Settings:
    return load_settings(workspace, transport="memory", local_principal="ops", local_role="operator")


def records_since(settings: Settings, before: int) -> list[dict[str, Any]]:
    return read_tail(settings.audit_path, 10_000)[before:]


def count(settings: Settings) -> int:
    return len(read_tail(settings.audit_path, 10_000)) if settings.audit_path.exists() else 0


# --- item 10: resources and prompts go through the enforcement point ---------------------------

# One URI per listed resource and template: real values where a fresh workspace has them; the
# others are refused or not found, and must be audited all the same.
READS = {
    "mlgate://standards": "mlgate://standards",
    "mlgate://policies": "mlgate://policies",
    "mlgate://policies/{rule_id}": "mlgate://policies/config.protected_fields",
    "mlgate://datasets": "mlgate://datasets",
    "mlgate://datasets/{content_hash}": "mlgate://datasets/" + "0" * 64,
    "mlgate://audit/tail": "mlgate://audit/tail",
    "mlgate://audit/mine": "mlgate://audit/mine",
    "mlgate://runs": "mlgate://runs",
    "mlgate://runs/{run_id}": "mlgate://runs/" + "a" * 32,
    "mlgate://models": "mlgate://models",
    "mlgate://models/{name}/card": "mlgate://models/credit-default/card",
}


async def test_every_resource_read_and_the_prompt_write_a_read_record(workspace: Path) -> None:
    settings = operator(workspace)
    async with Client(build_server(settings)) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        listed |= {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert listed == set(READS)
        for template, uri in READS.items():
            before = count(settings)
            with anyio.fail_after(TIMEOUT_S):
                try:
                    await client.read_resource(uri)
                except MCPError:
                    pass  # refused or not found: still a read, still audited
            [record] = records_since(settings, before)
            assert (record["kind"], record["resource"], record["principal"], record["role"], record["transport"]) == ("read", template, "ops", "operator", "memory"), template
            assert record["decision"] == "allow" and len(record["args_hash"]) == 64 and record["status"] in ("ok", "not_found", "failed"), record
        before = count(settings)
        await client.get_prompt("experiment_briefing")
    [record] = records_since(settings, before)
    assert (record["kind"], record["prompt"], record["status"]) == ("read", "experiment_briefing", "ok")
    assert verify(settings.audit_path).ok


async def test_an_agent_reading_the_full_audit_tail_is_refused_and_the_attempt_audited(settings: Settings) -> None:
    async with Client(build_server(settings)) as client:
        with pytest.raises(MCPError) as refused:
            await client.read_resource("mlgate://audit/tail")
        mine = json.loads((await client.read_resource("mlgate://audit/mine")).contents[0].text)
    assert "[resources.role]" in str(refused.value) and "human, operator" in str(refused.value)
    denied = next(r for r in read_tail(settings.audit_path, 100) if r.get("resource") == "mlgate://audit/tail")
    assert (denied["decision"], denied["status"], denied["denied_by"], denied["principal"]) == ("deny", "denied", ["resources.role"], "local-agent")
    assert mine["count"] == 1 and mine["records"][0]["resource"] == "mlgate://audit/tail"  # its own refused read, nobody else's


async def test_an_agent_reads_only_its_own_audit_records(settings: Settings) -> None:
    chain = AuditChain(settings.audit_path)
    chain.append({"kind": "decision", "principal": "alice", "role": "human", "tool": "decide_approval", "approval_id": "a1"})
    chain.append({"kind": "decision", "principal": "local-agent", "role": "agent", "tool": "load_dataset"})
    chain.append({"kind": "decision", "principal": "local-agent", "role": "human", "tool": "decide_approval"})
    chain.close()
    async with Client(build_server(settings)) as client:
        mine = json.loads((await client.read_resource("mlgate://audit/mine")).contents[0].text)
    assert [(r["principal"], r["role"], r["tool"]) for r in mine["records"]] == [("local-agent", "agent", "load_dataset")]


async def test_reading_runs_and_models_on_a_fresh_workspace_creates_no_mlflow_store(settings: Settings) -> None:
    async with Client(build_server(settings)) as client:
        runs = json.loads((await client.read_resource("mlgate://runs")).contents[0].text)
        models = json.loads((await client.read_resource("mlgate://models")).contents[0].text)
        with pytest.raises(MCPError, match="tracking.run_not_found"):
            await client.read_resource("mlgate://runs/" + "a" * 32)
    assert runs["count"] == 0 and models["count"] == 0
    assert not (settings.state_dir / "mlflow.db").exists() and not (settings.state_dir / "mlartifacts").exists()


async def test_an_empty_mlflow_file_gets_no_tables_from_a_read(settings: Settings) -> None:
    store = settings.state_dir / "mlflow.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.touch()
    async with Client(build_server(settings)) as client:
        assert json.loads((await client.read_resource("mlgate://runs")).contents[0].text)["count"] == 0
        assert json.loads((await client.read_resource("mlgate://models")).contents[0].text)["count"] == 0
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


async def test_a_resource_or_tool_registered_around_the_enforcer_is_never_served(settings: Settings) -> None:
    server = build_server(settings)
    served: list[str] = []

    @server.resource("mlgate://sneaky")
    def sneaky() -> str:
        served.append("resource")
        return "state"

    @server.tool(name="sneaky_tool")
    def sneaky_tool() -> str:
        served.append("tool")
        return "done"

    async with Client(server) as client:
        with pytest.raises(MCPError, match="Unknown resource"):
            await client.read_resource("mlgate://sneaky")
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("sneaky_tool", {})
    assert served == [] and unknown.value.error.code == INVALID_PARAMS and "[tool.known]" in unknown.value.error.message
    read, call = read_tail(settings.audit_path, 2)
    assert (read["kind"], read["resource"], read["status"]) == ("read", "<unknown>", "not_found")
    assert (call["kind"], call["tool"], call["decision"]) == ("decision", "<unknown>", "deny")
    assert "sneaky" not in json.dumps([read, call])


async def test_an_unknown_prompt_is_audited_and_refused(settings: Settings) -> None:
    async with Client(build_server(settings)) as client:
        with pytest.raises(MCPError, match="Unknown prompt"):
            await client.get_prompt("../../etc/passwd")
    [record] = read_tail(settings.audit_path, 1)
    assert (record["prompt"], record["decision"], record["status"]) == ("<unknown>", "deny", "not_found") and "passwd" not in json.dumps(record)


# --- item 11: Enforcer.call never raises; every failure ends with an outcome record --------------


class HookInput(StrictInput):
    text: str = Field(description="'please' is allowed", max_length=20)
    dry_run: bool = Field(False, description="decide only")


def _polite(facts: dict[str, Any], config: Any) -> Decision:
    return Decision.allow("t.polite") if facts["text"] == "please" else Decision.deny("t.polite", "impolite", "say please")


async def _execute(request: HookInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    return {"echo": request.text}


def hook_server(audit_path: Path, threads: list[int]) -> GovernedServer:
    """A real ToolSpec whose on_deny and preview raise an OSError naming a state-dir path."""

    def on_deny(request: HookInput, facts: dict[str, Any], verdict: Any, ctx: CallContext) -> dict[str, Any]:
        threads.append(threading.get_ident())
        raise OSError(f"[Errno 13] Permission denied: '{SECRET_PATH}'")

    def preview(request: HookInput, facts: dict[str, Any]) -> dict[str, Any]:
        threads.append(threading.get_ident())
        raise OSError(f"[Errno 2] No such file or directory: '{SECRET_PATH}'")

    rule = Rule("t.polite", "test", "be polite", _polite)
    spec = ToolSpec("hooked", "Hooked", "a tool with raising hooks", HookInput, (rule,), lambda request, ctx: {"text": request.text}, _execute, preview=preview, on_deny=on_deny)
    enforcer = Enforcer(AuditChain(audit_path), lambda: {})
    return GovernedServer("t", enforcer=enforcer, identifier=Identifier(Principal("tester", "agent"), "memory", None), read_ports=None, tools=[spec])


def assert_masked(result: Any) -> None:
    text = json.dumps(result.structured_content) + "".join(c.text for c in result.content)
    assert result.is_error and result.structured_content["rule_id"] == "server.internal", result.structured_content
    assert "secret-state" not in text and "Errno" not in text and "OSError" not in text


async def test_an_on_deny_that_raises_gives_a_masked_error_and_an_outcome_record(tmp_path: Path) -> None:
    threads: list[int] = []
    async with Client(hook_server(tmp_path / "audit.jsonl", threads)) as client:
        result = await client.call_tool("hooked", {"text": "rude"})
    assert_masked(result)
    assert result.structured_content["decision"] == "deny"
    decision, outcome = read_tail(tmp_path / "audit.jsonl", 10)
    assert (decision["kind"], decision["decision"]) == ("decision", "deny")
    assert (outcome["kind"], outcome["status"], outcome["stage"], outcome["error"]) == ("outcome", "error", "on_deny", "OSError")
    assert threads and threads[0] != threading.get_ident()  # the hook ran off the event loop's thread


async def test_a_preview_that_raises_gives_a_masked_error_and_an_outcome_record(tmp_path: Path) -> None:
    threads: list[int] = []
    async with Client(hook_server(tmp_path / "audit.jsonl", threads)) as client:
        result = await client.call_tool("hooked", {"text": "please", "dry_run": True})
    assert_masked(result)
    decision, outcome = read_tail(tmp_path / "audit.jsonl", 10)
    assert (decision["decision"], decision["dry_run"]) == ("allow", True)
    assert (outcome["kind"], outcome["status"], outcome["stage"], outcome["error"]) == ("outcome", "error", "preview", "OSError")
    assert threads and threads[0] != threading.get_ident()


async def test_an_unknown_tool_name_is_audited_without_its_text(tmp_path: Path) -> None:
    async with Client(hook_server(tmp_path / "audit.jsonl", [])) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("rm -rf /srv/secret-state", {"x": 1})
    # the spec's answer to an unknown tool: a protocol error (-32602), not a tool result
    assert unknown.value.error.code == INVALID_PARAMS and "tools/list" in unknown.value.error.message
    # the error's data holds the fields a denied call's result would: an agent reads the rule and what to do
    assert unknown.value.error.data == {"decision": "deny", "rule_id": "tool.known", "reason": "this server has no tool of that name", "remediation": "list the tools (tools/list) and call one by its exact name"}
    [record] = read_tail(tmp_path / "audit.jsonl", 10)
    assert (record["tool"], record["decision"], len(record["name_hash"])) == ("<unknown>", "deny", 16)
    assert "secret" not in json.dumps(record) and "secret" not in unknown.value.error.message


async def test_a_broken_tracking_store_gives_masked_errors_and_audit_records(settings: Settings) -> None:
    store = settings.state_dir / "mlflow.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_bytes(b"this is not an sqlite database, whatever MLflow thinks\n" * 64)
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(TIMEOUT_S):
            result = await client.call_tool("list_runs", {})
            with pytest.raises(MCPError) as refused:
                await client.read_resource("mlgate://runs")
    text = json.dumps(result.structured_content) + str(refused.value)
    assert result.is_error and result.structured_content["rule_id"] == "server.internal"
    assert "[tracking.unavailable]" in str(refused.value)
    assert str(settings.state_dir) not in text and "mlflow.db" not in text and "not a database" not in text
    outcome, read = read_tail(settings.audit_path, 2)
    assert (outcome["tool"], outcome["kind"], outcome["status"], outcome["stage"]) == ("list_runs", "outcome", "error", "gather")
    assert (read["resource"], read["status"], read["rule_id"]) == ("mlgate://runs", "failed", "tracking.unavailable")


async def test_over_http_an_agent_token_cannot_read_the_full_audit_tail_and_an_operator_token_can(workspace: Path) -> None:
    from server.auth import TokenStore  # noqa: PLC0415 (HTTP-only parts)
    from tests.e2e.transports import mlgate_http, streamable_http  # noqa: PLC0415

    settings = load_settings(workspace, transport="memory")
    store = TokenStore(settings.state_dir)
    agent, operator_token = store.create("remote-agent", "agent"), store.create("ops", "operator")  # the bootstrap operator
    with anyio.fail_after(TIMEOUT_S), mlgate_http(settings) as url:
        async with streamable_http(url, agent) as client:
            with pytest.raises(MCPError, match=r"\[resources.role\]"):
                await client.read_resource("mlgate://audit/tail")
        async with streamable_http(url, operator_token) as client:
            tail = json.loads((await client.read_resource("mlgate://audit/tail")).contents[0].text)
    assert [(r["principal"], r["status"]) for r in tail["records"] if r.get("kind") == "read"] == [("remote-agent", "denied")]
    reads = [(r["principal"], r["role"], r["transport"], r["decision"]) for r in read_tail(settings.audit_path, 100) if r.get("kind") == "read"]
    assert reads == [("remote-agent", "agent", "streamable-http", "deny"), ("ops", "operator", "streamable-http", "allow")]
