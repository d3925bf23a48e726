"""Per-token quotas of the HTTP app (server/http.py TokenQuota), over a real uvicorn server on a
free loopback port with real HTTP clients: one token cannot hold every session or connection."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest

from server.auth import TokenStore
from server.settings import HttpSettings, Settings
from tests.e2e.transports import bearer, mlgate_http
from tests.server.test_http import INITIALIZE, MCP_HEADERS, _sse_endpoint

pytestmark = pytest.mark.anyio
WAIT_S = 20.0


def _limited(settings: Settings, **limits: int) -> Settings:
    return settings.model_copy(update={"http": HttpSettings(**limits)})


async def _initialize(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    return await http.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer(token)})


async def test_a_token_past_its_session_limit_gets_429_naming_what_to_close(settings: Settings) -> None:
    store = TokenStore(settings.state_dir)
    greedy, other = store.create("greedy-agent", "agent"), store.create("other-agent", "agent")
    with mlgate_http(_limited(settings, max_sessions_per_token=2)) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            opened = [await _initialize(http, url, greedy) for _ in range(2)]
            refused = await _initialize(http, url, greedy)
            elsewhere = await _initialize(http, url, other)
    assert [r.status_code for r in opened] == [200, 200]
    assert refused.status_code == 429 and refused.headers["retry-after"]
    body = refused.json()
    assert body["error"] == "too_many_sessions" and "'greedy-agent' holds 2 sessions" in body["error_description"] and "DELETE /mcp" in body["error_description"]
    assert elsewhere.status_code == 200


async def test_an_ended_session_gives_its_place_back(settings: Settings) -> None:
    token = TokenStore(settings.state_dir).create("greedy-agent", "agent")
    with mlgate_http(_limited(settings, max_sessions_per_token=1)) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            session = (await _initialize(http, url, token)).headers["mcp-session-id"]
            assert (await _initialize(http, url, token)).status_code == 429
            headers = {**MCP_HEADERS, **bearer(token), "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
            assert (await http.delete(f"{url}/mcp", headers=headers)).status_code == 200
            again = await _initialize(http, url, token)
    assert again.status_code == 200 and again.headers["mcp-session-id"] != session


async def test_initialize_requests_sent_at_once_open_no_more_sessions_than_the_limit(settings: Settings) -> None:
    """The SDK registers a session only after an await: a burst must not all pass a check that
    counts registered sessions only."""
    token = TokenStore(settings.state_dir).create("bursty-agent", "agent")
    statuses: list[int] = []
    with mlgate_http(_limited(settings, max_sessions_per_token=2)) as url:
        async with httpx2.AsyncClient(timeout=WAIT_S, limits=httpx2.Limits(max_connections=40)) as http:

            async def initialize() -> None:
                statuses.append((await _initialize(http, url, token)).status_code)

            async with anyio.create_task_group() as burst:
                for _ in range(20):
                    burst.start_soon(initialize)
            after = await _initialize(http, url, token)
    assert statuses.count(200) <= 2 and statuses.count(429) >= 18 and sorted(set(statuses)) in ([200, 429], [429])
    assert after.status_code == 429


MODERN_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
               "io.modelcontextprotocol/clientCapabilities": {}}


async def test_a_stateless_request_opens_no_session_and_is_not_refused_as_one(settings: Settings) -> None:
    token = TokenStore(settings.state_dir).create("modern-agent", "agent")
    modern = {**MCP_HEADERS, **bearer(token), "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list"}
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": MODERN_META}}
    with mlgate_http(_limited(settings, max_sessions_per_token=1)) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            assert (await _initialize(http, url, token)).status_code == 200
            stateless = await http.post(f"{url}/mcp", json=request, headers=modern)
    assert stateless.status_code == 200 and "tools" in stateless.text


async def _open_sse(http: httpx2.AsyncClient, url: str, token: str, held: list[Any]) -> int:
    """Opens an SSE stream and, when it is accepted, keeps it open in `held`; its status."""
    request = http.build_request("GET", f"{url}/sse", headers=bearer(token))
    response = await http.send(request, stream=True)
    if response.status_code == 200:
        lines = response.aiter_lines()
        await _sse_endpoint(lines)
        held.append((response, lines))
    else:
        await response.aread()
        await response.aclose()
    return response.status_code


async def test_a_token_holding_its_open_request_limit_gets_429_until_it_closes_one(settings: Settings) -> None:
    store = TokenStore(settings.state_dir)
    greedy, other = store.create("greedy-agent", "agent"), store.create("other-agent", "agent")
    held: list[Any] = []
    with mlgate_http(_limited(settings, max_open_requests_per_token=2)) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            statuses = [await _open_sse(http, url, greedy, held) for _ in range(3)]
            elsewhere = await _open_sse(http, url, other, held)
            await held[0][0].aclose()
            with anyio.fail_after(WAIT_S):  # the server counts the stream closed once it sees the disconnect
                while await _open_sse(http, url, greedy, held) != 200:
                    await anyio.sleep(0.05)
            for response, _ in held[1:]:
                await response.aclose()
    assert statuses == [200, 200, 429] and elsewhere == 200
