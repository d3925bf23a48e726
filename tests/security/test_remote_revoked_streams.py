"""Revoking a token also ends the response streams it opened.

A bearer token is checked when a request starts; a streamed response (a `subscriptions/listen`
stream, an SSE reply) then lives as long as the client keeps it open. Without a check on the way
out, a client whose token the operator revoked (a leaked token) keeps receiving what the server
pushes on those streams. Real uvicorn server, real MCP client, real token store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest
from mcp.shared.subscriptions import ResourceUpdated

from server.auth import TokenStore
from server.http import build_http_app, free_loopback_bind, serving_in_background
from server.ports import Ports, build_ports
from server.settings import Settings
from tests.e2e.transports import streamable_http

pytestmark = pytest.mark.anyio
RUN_URI = "mlgate://runs/" + "a" * 32
WAIT_S = 10


@contextmanager
def served(settings: Settings) -> Iterator[tuple[str, Ports]]:
    """mlgate over HTTP on a free loopback port, with the ports whose subscriptions bus it serves."""
    ports = build_ports(settings)
    bind, sock = free_loopback_bind()
    with serving_in_background(build_http_app(settings, bind, ports=ports), bind, sock) as url:
        yield url, ports


async def _next_uri(updates: object) -> str | None:
    """The next event's URI, or None when the stream ended (gracefully or not)."""
    try:
        with anyio.fail_after(WAIT_S):
            return (await updates.__anext__()).uri  # type: ignore[attr-defined]
    except TimeoutError:
        raise
    except Exception:  # noqa: BLE001 - StopAsyncIteration or SubscriptionLost: the stream is over
        return None


async def test_a_listen_stream_delivers_nothing_once_its_token_is_revoked(settings: Settings) -> None:
    store = TokenStore(settings.state_dir)
    token = store.create("leaked-agent", "agent")
    with served(settings) as (url, ports):
        async with streamable_http(url, token) as client:
            async with client.listen(resource_subscriptions=[RUN_URI]) as updates:
                await ports.events.publish(ResourceUpdated(uri=RUN_URI))
                assert await _next_uri(updates) == RUN_URI
                store.revoke("leaked-agent")
                await ports.events.publish(ResourceUpdated(uri=RUN_URI))
                assert await _next_uri(updates) is None


async def test_a_listen_stream_of_a_live_token_keeps_delivering(settings: Settings) -> None:
    store = TokenStore(settings.state_dir)
    token = store.create("ci-agent", "agent")
    store.create("other-agent", "agent")
    with served(settings) as (url, ports):
        async with streamable_http(url, token) as client:
            async with client.listen(resource_subscriptions=[RUN_URI]) as updates:
                await ports.events.publish(ResourceUpdated(uri=RUN_URI))
                assert await _next_uri(updates) == RUN_URI
                store.revoke("other-agent")
                await ports.events.publish(ResourceUpdated(uri=RUN_URI))
                assert await _next_uri(updates) == RUN_URI
            assert (await client.list_tools()).tools
