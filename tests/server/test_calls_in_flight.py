"""Calls one remote token runs at once (server/calls_in_flight.py), counted by the enforcement
point: over a real uvicorn server on a free loopback port, calls posted over SSE (answered 202 at
once) and a streamable HTTP call whose POST the client dropped still count while they run."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.mcpserver import MCPServer

from policies import Decision, Principal, Rule
from server.app import build_server
from server.audit import read_tail
from server.auth import TokenStore
from server.calls_in_flight import CallsInFlight, TooManyCalls
from server.enforcement import Enforcer
from server.http import BindAddress, auth_options, combined_app, free_loopback_bind, serving_in_background, transport_security
from server.identity import HTTP_TRANSPORT, Identifier
from server.ports import build_ports
from server.registration import governed_tool
from server.settings import HttpSettings, Settings
from tests.e2e.transports import bearer
from tests.server.test_http import INITIALIZE, MCP_HEADERS, WhoInput, _sse_endpoint
from tools.base import CallContext, ToolSpec

pytestmark = pytest.mark.anyio
WAIT_S = 20.0
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
RULE = "quota.calls_in_flight"


def _call(request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "wait", "arguments": {}}}


def _waiting_server(settings: Settings, bind: BindAddress, started: list[int], limit: int):
    """A governed `wait` tool that never returns by itself, behind real auth, on the real audit
    chain, its enforcer counting `limit` calls per token."""
    ports = build_ports(settings)

    async def execute(request: WhoInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        started.append(1)
        await anyio.Event().wait()
        return {}

    allow = Rule("t.allow", "test", "allows", lambda facts, config: Decision.allow("t.allow"))
    spec = ToolSpec("wait", "Wait", "waits until cancelled", WhoInput, (allow,), lambda request, ctx: {}, execute)
    enforcer = Enforcer(ports.audit, lambda: {}, calls_per_token=limit)
    server = MCPServer("t", tools=[governed_tool(spec, enforcer, Identifier(settings.local, HTTP_TRANSPORT, ports))], **auth_options(TokenStore(settings.state_dir), bind.url))
    return combined_app(server, bind, transport_security(bind, settings.http))


async def _until_started(started: list[int], count: int) -> None:
    with anyio.fail_after(WAIT_S):
        while len(started) < count:
            await anyio.sleep(0.01)


async def _answer(lines: Any, request_id: int) -> dict[str, Any]:
    """The JSON-RPC answer to `request_id` among an SSE stream's `data:` lines."""
    with anyio.fail_after(WAIT_S):
        async for line in lines:
            if line.startswith("data:") and (message := json.loads(line.removeprefix("data:"))).get("id") == request_id:
                return message
    raise AssertionError(f"the stream closed before answering request {request_id}")


def _refusals(settings: Settings) -> list[tuple[str, str, list[str]]]:
    records = read_tail(settings.audit_path, 50)
    return [(r["transport"], r["principal"], r["rule_ids"]) for r in records if r["kind"] == "decision" and r["decision"] == "deny"]


async def test_calls_posted_over_sse_past_the_tokens_limit_are_refused_and_the_refusal_audited(settings: Settings) -> None:
    token, started, (bind, sock) = TokenStore(settings.state_dir).create("busy-agent", "agent"), [], free_loopback_bind()
    with serving_in_background(_waiting_server(settings, bind, started, limit=2), bind, sock) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            async with http.stream("GET", f"{url}/sse", headers=bearer(token)) as stream:
                lines = stream.aiter_lines()
                endpoint = await _sse_endpoint(lines)
                for message in (INITIALIZE, INITIALIZED, _call(2), _call(3)):
                    assert (await http.post(f"{url}{endpoint}", json=message, headers=bearer(token))).status_code == 202
                await _until_started(started, 2)
                await http.post(f"{url}{endpoint}", json=_call(4), headers=bearer(token))
                refused = await _answer(lines, 4)
    result = refused["result"]
    assert result["isError"] and result["structuredContent"]["rule_id"] == RULE
    assert "'busy-agent' already runs 2 calls at once" in result["structuredContent"]["reason"] and "detach=true" in result["structuredContent"]["remediation"]
    assert len(started) == 2 and _refusals(settings) == [("sse", "busy-agent", [RULE])]


async def test_a_streamable_http_call_whose_post_was_dropped_still_counts_while_it_runs(settings: Settings) -> None:
    token, started, (bind, sock) = TokenStore(settings.state_dir).create("busy-agent", "agent"), [], free_loopback_bind()
    with serving_in_background(_waiting_server(settings, bind, started, limit=1), bind, sock) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            session = (await http.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer(token)})).headers["mcp-session-id"]
            headers = {**MCP_HEADERS, **bearer(token), "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
            await http.post(f"{url}/mcp", json=INITIALIZED, headers=headers)
            async with http.stream("POST", f"{url}/mcp", json=_call(2), headers=headers):
                await _until_started(started, 1)
            # the POST is gone; its call runs on (a dropped connection is no cancellation)
            async with http.stream("POST", f"{url}/mcp", json=_call(3), headers=headers) as second:
                refused = await _answer(second.aiter_lines(), 3)
    assert refused["result"]["isError"] and refused["result"]["structuredContent"]["rule_id"] == RULE
    assert len(started) == 1 and _refusals(settings) == [("streamable-http", "busy-agent", [RULE])]


def _context(name: str, transport: str) -> CallContext:
    return CallContext(principal=Principal(name, "agent"), transport=transport, ports=None)


def test_each_remote_token_counts_its_own_calls_and_a_finished_call_frees_its_place() -> None:
    calls = CallsInFlight(1)
    with calls.take(_context("a", "sse")):
        with pytest.raises(TooManyCalls), calls.take(_context("a", "streamable-http")):
            pass
        with calls.take(_context("b", "streamable-http")):
            assert (calls.running("a"), calls.running("b")) == (1, 1)
    with calls.take(_context("a", "streamable-http")):
        assert calls.running("a") == 1
    assert calls.running("a") == 0


def test_local_calls_are_not_counted() -> None:
    calls = CallsInFlight(1)
    with calls.take(_context("claude", "stdio")), calls.take(_context("claude", "stdio")), calls.take(_context("claude", "memory")):
        assert calls.running("claude") == 0


def test_the_server_counts_calls_per_token_to_the_http_request_limit(settings: Settings) -> None:
    limited = settings.model_copy(update={"http": HttpSettings(max_open_requests_per_token=3)})
    ports = build_ports(limited)
    try:
        assert build_server(limited, ports).enforcer.calls_per_token == 3
    finally:
        ports.audit.close()


async def test_a_refusal_past_the_limit_that_cannot_be_recorded_answers_audit_unavailable() -> None:
    """The enforcer never raises: a quota refusal the chain cannot hold is answered as any
    unrecordable decision is, and nothing runs."""
    release, ran = anyio.Event(), []

    class BreakableSink:
        broken = False

        def append(self, record: dict[str, Any]) -> dict[str, Any]:
            if self.broken:
                raise OSError("disk full")
            return record

    async def execute(request: WhoInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        ran.append(1)
        await release.wait()
        return {}

    allow = Rule("t.allow", "test", "allows", lambda facts, config: Decision.allow("t.allow"))
    spec = ToolSpec("wait", "Wait", "waits", WhoInput, (allow,), lambda request, ctx: {}, execute)
    sink = BreakableSink()
    enforcer = Enforcer(sink, lambda: {}, calls_per_token=1)
    async with anyio.create_task_group() as group:
        group.start_soon(enforcer.call, spec, {}, _context("remote-agent", "sse"))
        await _until_started(ran, 1)
        sink.broken = True
        refused = await enforcer.call(spec, {}, _context("remote-agent", "sse"))
        sink.broken = False
        release.set()
    assert refused.is_error and refused.structured_content["rule_id"] == "audit.unavailable" and ran == [1]
