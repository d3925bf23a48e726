"""The HTTP app over a real uvicorn server on a free loopback port, driven by real HTTP clients."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import httpx2
import pytest
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecurityMiddleware
from pydantic import Field
from starlette.requests import Request

from policies import Decision, Rule
from server.audit import read_tail
from server.auth import TokenStore
from server.enforcement import Enforcer
from server.http import (
    BindAddress,
    auth_options,
    build_http_app,
    combined_app,
    free_loopback_bind,
    parse_bind,
    serving_in_background,
    transport_security,
)
from server.identity import HTTP_TRANSPORT, Identifier
from server.ports import build_ports
from server.registration import governed_tool
from server.settings import HttpSettings, Settings
from tests.credentials import issue
from tests.e2e.transports import bearer, mlgate_http, sse, streamable_http
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import InvalidInput

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def token(settings: Settings) -> str:
    return TokenStore(settings.state_dir).create("ci-agent", "agent")


async def _post_initialize(url: str, headers: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10.0) as http:
        return await http.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Y2k6eA=="}])
async def test_requests_without_a_valid_token_are_401_on_every_endpoint(settings: Settings, token: str, headers: dict[str, str]) -> None:
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            replies = [
                await http.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers}),
                await http.get(f"{url}/sse", headers=headers),
                await http.post(f"{url}/messages/?session_id=0", json=INITIALIZE, headers=headers),
            ]
    assert [r.status_code for r in replies] == [401, 401, 401]
    assert all("resource_metadata=" in r.headers["www-authenticate"] for r in replies)


async def test_a_valid_token_opens_a_session(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        reply = await _post_initialize(url, bearer(token))
    assert reply.status_code == 200 and reply.headers.get("mcp-session-id")


async def test_a_revoked_token_is_refused_by_the_running_server(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        assert (await _post_initialize(url, bearer(token))).status_code == 200
        TokenStore(settings.state_dir).revoke("ci-agent")
        assert (await _post_initialize(url, bearer(token))).status_code == 401


async def test_protected_resource_metadata_names_the_mcp_endpoint(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            reply = await http.get(f"{url}/.well-known/oauth-protected-resource/mcp")
    assert reply.status_code == 200 and reply.json()["resource"] == f"{url}/mcp"


async def test_foreign_host_header_is_421_even_with_a_valid_token(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        reply = await _post_initialize(url, {**bearer(token), "Host": "attacker.example:80"})
    assert reply.status_code == 421


async def test_foreign_origin_is_403_even_with_a_valid_token(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        reply = await _post_initialize(url, {**bearer(token), "Origin": "http://attacker.example"})
    assert reply.status_code == 403


async def test_loopback_origin_is_accepted(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        port = url.rsplit(":", 1)[1]
        reply = await _post_initialize(url, {**bearer(token), "Origin": f"http://localhost:{port}"})
    assert reply.status_code == 200


async def test_off_loopback_only_the_configured_hosts_and_origins_are_accepted(settings: Settings, token: str) -> None:
    http_settings = HttpSettings(allowed_hosts=("mlgate.bank.internal:8443",), allowed_origins=("https://agents.bank.internal",))
    configured = settings.model_copy(update={"http": http_settings})
    _, sock = free_loopback_bind()
    public = BindAddress("0.0.0.0", sock.getsockname()[1])
    with serving_in_background(build_http_app(configured, public), public, sock) as url:
        local_url = url.replace("0.0.0.0", "127.0.0.1")
        good = {**bearer(token), "Host": "mlgate.bank.internal:8443"}
        assert (await _post_initialize(local_url, good)).status_code == 200
        assert (await _post_initialize(local_url, {**good, "Origin": "https://agents.bank.internal"})).status_code == 200
        assert (await _post_initialize(local_url, {**good, "Origin": "http://localhost:1"})).status_code == 403
        assert (await _post_initialize(local_url, bearer(token))).status_code == 421


def test_serving_http_without_any_token_is_refused(settings: Settings) -> None:
    with pytest.raises(InvalidInput) as refused:
        build_http_app(settings, BindAddress("127.0.0.1", 8765))
    assert refused.value.rule_id == "serve.no_tokens" and "mlgate token create" in refused.value.remediation


def test_binding_off_loopback_without_allowed_hosts_is_refused(settings: Settings, token: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        build_http_app(settings, BindAddress("0.0.0.0", 8765))
    assert refused.value.rule_id == "serve.non_loopback"


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:8765", "127.0.0.1", 8765, True),
        ("localhost:1", "localhost", 1, True),
        ("[::1]:8765", "::1", 8765, True),
        ("127.0.0.2:80", "127.0.0.2", 80, True),
        ("0.0.0.0:8765", "0.0.0.0", 8765, False),
        ("10.1.2.3:443", "10.1.2.3", 443, False),
        ("mlgate.bank.internal:443", "mlgate.bank.internal", 443, False),
    ],
)
def test_bind_addresses_parse_and_classify(text: str, host: str, port: int, loopback: bool) -> None:
    bind = parse_bind(text)
    assert (bind.host, bind.port, bind.is_loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["8765", "127.0.0.1", "127.0.0.1:", ":8765", "127.0.0.1:0", "127.0.0.1:70000", "h:-1", "h:8a"])
def test_bad_bind_addresses_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_bind(text)


def test_loopback_binds_protect_against_dns_rebinding_with_loopback_names_only() -> None:
    security = transport_security(BindAddress("127.0.0.1", 1), HttpSettings(allowed_hosts=("x:1",)))
    assert security.enable_dns_rebinding_protection
    assert security.allowed_hosts == ["127.0.0.1", "localhost", "[::1]", "127.0.0.1:*", "localhost:*", "[::1]:*"]
    assert "http://localhost" in security.allowed_origins and "http://evil.example" not in security.allowed_origins


def test_a_loopback_server_on_port_80_accepts_a_host_header_without_the_port() -> None:
    """Clients leave the default port out of Host; a rebinding page still sends its own domain."""
    checker = TransportSecurityMiddleware(transport_security(BindAddress("127.0.0.1", 80), HttpSettings()))

    async def status(host: str, origin: str | None = None) -> int | None:
        headers = [(b"host", host.encode()), *([(b"origin", origin.encode())] if origin else [])]
        refused = await checker.validate_request(Request({"type": "http", "method": "GET", "path": "/mcp", "headers": headers}))
        return None if refused is None else refused.status_code

    assert anyio.run(status, "127.0.0.1") is None and anyio.run(status, "localhost", "http://localhost") is None
    assert anyio.run(status, "evil.example") == 421 and anyio.run(status, "127.0.0.1", "http://evil.example") == 403


class WhoInput(StrictInput):
    note: str = Field("", description="free text, ignored", max_length=20)


def _humans_only(facts: dict[str, Any], config: Any) -> Decision:
    if facts["role"] in ("human", "operator"):
        return Decision.allow("t.humans_only")
    return Decision.deny("t.humans_only", "only humans may call this", "ask a human")


def _roles_server(settings: Settings, bind: BindAddress):
    """A governed tool that only humans may call, on the real audit chain, behind real auth."""
    ports = build_ports(settings)

    async def execute(request: WhoInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return {"principal": ctx.principal.name, "role": ctx.principal.role, "transport": ctx.transport}

    gather = lambda request, ctx: {"role": ctx.principal.role}  # noqa: E731
    spec = ToolSpec("whoami", "Who am I", "humans only", WhoInput, (Rule("t.humans_only", "test", "humans only", _humans_only),), gather, execute)
    tool = governed_tool(spec, Enforcer(ports.audit, lambda: {}), Identifier(settings.local, HTTP_TRANSPORT, ports))
    server = MCPServer("t", tools=[tool], **auth_options(TokenStore(settings.state_dir), bind.url))
    return combined_app(server, bind, transport_security(bind, settings.http))


async def test_token_roles_reach_the_enforcement_point_and_the_audit_over_mcp_and_sse(settings: Settings) -> None:
    store = TokenStore(settings.state_dir)
    tokens = {"agent": store.create("remote-agent", "agent"), "human": issue(settings.state_dir, "risk-officer", "human")}
    bind, sock = free_loopback_bind()
    results = {}
    with serving_in_background(_roles_server(settings, bind), bind, sock) as url:
        for transport, connect in (("streamable-http", streamable_http), ("sse", sse)):
            for role, token in tokens.items():
                async with connect(url, token) as client:
                    results[transport, role] = await client.call_tool("whoami", {})
    for transport in ("streamable-http", "sse"):
        assert results[transport, "agent"].is_error and results[transport, "agent"].structured_content["rule_id"] == "t.humans_only"
        human = results[transport, "human"]
        assert not human.is_error and human.structured_content == {"principal": "risk-officer", "role": "human", "transport": transport}
    decisions = [(r["transport"], r["principal"], r["role"], r["decision"]) for r in read_tail(settings.audit_path, 100) if r["kind"] == "decision"]
    assert decisions == [
        ("streamable-http", "remote-agent", "agent", "deny"),
        ("streamable-http", "risk-officer", "human", "allow"),
        ("sse", "remote-agent", "agent", "deny"),
        ("sse", "risk-officer", "human", "allow"),
    ]


async def test_a_401_says_plainly_that_an_operator_issued_bearer_token_is_needed(settings: Settings, token: str) -> None:
    with mlgate_http(settings) as url:
        reply = await _post_initialize(url, {})
    assert reply.status_code == 401
    assert "Authorization: Bearer <token>" in reply.json()["error_description"] and "mlgate token create" in reply.json()["error_description"]
    assert "mlgate token create" in reply.headers["www-authenticate"] and "resource_metadata=" in reply.headers["www-authenticate"]


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/mcp", "/.well-known/openid-configuration"])
async def test_oauth_discovery_gets_a_json_answer_that_there_is_no_sign_in(settings: Settings, token: str, path: str) -> None:
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            reply = await http.get(f"{url}{path}")
    assert reply.status_code == 404 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == "no_authorization_server" and "bearer token" in reply.json()["error_description"]


async def test_a_session_opened_with_one_token_refuses_requests_carrying_another(settings: Settings) -> None:
    store = TokenStore(settings.state_dir)
    owner, other = issue(settings.state_dir, "risk-officer", "human"), store.create("remote-agent", "agent")
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            session = (await _post_initialize(url, bearer(owner))).headers["mcp-session-id"]
            listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
            streamable = await http.post(f"{url}/mcp", json=listing, headers={**MCP_HEADERS, **bearer(other), "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"})
            async with http.stream("GET", f"{url}/sse", headers=bearer(owner)) as stream:
                lines = stream.aiter_lines()
                endpoint = await _sse_endpoint(lines)
                over_sse = await http.post(f"{url}{endpoint}", json=INITIALIZE, headers=bearer(other))
    assert (streamable.status_code, over_sse.status_code) == (404, 404)


async def _sse_endpoint(lines: Any) -> str:
    """The message endpoint an SSE stream names first. `lines` is the stream's line iterator, held
    by the caller: an iterator dropped here would be finalized, closing the stream."""
    async for line in lines:
        if line.startswith("data:"):
            return line.removeprefix("data:").strip()
    raise AssertionError("the SSE stream closed before naming its message endpoint")


def _blocking_server(settings: Settings, bind: BindAddress, started: threading.Event):
    """A governed tool whose execute waits until it is cancelled, on the real audit chain."""
    ports = build_ports(settings)

    async def execute(request: WhoInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        started.set()
        await anyio.Event().wait()
        return {}

    allow = Rule("t.allow", "test", "allows", lambda facts, config: Decision.allow("t.allow"))
    spec = ToolSpec("wait", "Wait", "waits until cancelled", WhoInput, (allow,), lambda request, ctx: {}, execute)
    tool = governed_tool(spec, Enforcer(ports.audit, lambda: {}), Identifier(settings.local, HTTP_TRANSPORT, ports))
    server = MCPServer("t", tools=[tool], **auth_options(TokenStore(settings.state_dir), bind.url))
    return combined_app(server, bind, transport_security(bind, settings.http))


async def test_a_client_dropping_its_sse_stream_mid_call_cancels_the_call_and_the_audit_records_it(settings: Settings, token: str) -> None:
    started, bind, sock = threading.Event(), *free_loopback_bind()
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "wait", "arguments": {}}}
    with serving_in_background(_blocking_server(settings, bind, started), bind, sock) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            async with http.stream("GET", f"{url}/sse", headers=bearer(token)) as stream:
                lines = stream.aiter_lines()
                endpoint = await _sse_endpoint(lines)
                for message in (INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}, call):
                    await http.post(f"{url}{endpoint}", json=message, headers=bearer(token))
                with anyio.fail_after(10):
                    while not started.is_set():
                        await anyio.sleep(0.01)
        with anyio.fail_after(10):  # the stream is gone, the server still runs
            while not (outcomes := [r for r in read_tail(settings.audit_path, 20) if r["kind"] == "outcome"]):
                await anyio.sleep(0.05)
    assert [(r["tool"], r["status"], r["transport"]) for r in outcomes] == [("wait", "cancelled", "sse")]
