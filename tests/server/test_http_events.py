"""Resuming a dropped streamable HTTP response (server/http_events.py): a real `mlgate serve --http`
app on loopback, raw HTTP requests as a client whose connection drops would send them."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.app import build_server
from server.auth import TokenStore
from server.http import free_loopback_bind, live_sessions, serving_in_background
from server.http_events import ReplayBudget, SessionEvents, SessionEventsMiddleware, SessionEventStore
from server.ports import build_ports
from server.settings import HttpSettings, Settings
from tests.e2e.transports import bearer, mlgate_http
from tests.tools.test_run_experiment import REASONING, governed  # noqa: F401 - fixture

pytestmark = pytest.mark.anyio
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
VERSION = "2025-11-25"  # event ids (priming events) are sent from this protocol version on
IDLE_S = 0.5
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_runs", "arguments": {}}}


async def open_session(http: httpx2.AsyncClient, url: str, token: str | None = None) -> dict[str, str]:
    initialize = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    headers = {**MCP_HEADERS, **(bearer(token) if token else {})}
    opened = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize}, headers=headers)
    assert opened.status_code == 200, opened.text
    session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
    await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


async def events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """The SSE events of a response: {"id", "data"} (data may be empty: a priming event)."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif ":" in line:
            field, _, value = line.partition(":")
            event[field] = value.removeprefix(" ")


async def first_event_then_drop(http: httpx2.AsyncClient, url: str, session: dict[str, str]) -> dict[str, str]:
    """POST the call, read its first event (the priming event with its id) and drop the connection."""
    async with http.stream("POST", f"{url}/mcp", json=CALL, headers=session) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for event in events(stream.aiter_lines()):
            return event
    raise AssertionError("the call's stream ended before its first event")


async def resumed(http: httpx2.AsyncClient, url: str, session: dict[str, str], last_event_id: str) -> dict[str, Any]:
    """GET with Last-Event-ID: the first JSON-RPC message it delivers."""
    headers = {**session, "Accept": "text/event-stream", "Last-Event-ID": last_event_id}
    async with http.stream("GET", f"{url}/mcp", headers=headers) as stream:
        assert stream.status_code == 200
        async for event in events(stream.aiter_lines()):
            if event.get("data"):
                return json.loads(event["data"])
    raise AssertionError("the resumed stream ended without a message")


async def test_a_call_whose_stream_dropped_is_resumed_with_its_result(settings: Settings) -> None:
    token = TokenStore(settings.state_dir).create("roaming", "agent")
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=30.0) as http:
            session = await open_session(http, url, token)
            priming = await first_event_then_drop(http, url, session)
            assert priming["id"] and not priming.get("data")
            message = await resumed(http, url, session, priming["id"])
    assert message["id"] == 2 and "runs" in message["result"]["structuredContent"], message


async def test_another_session_of_the_same_token_cannot_resume_a_stream(settings: Settings) -> None:
    """Both sessions number their requests from 1: an event id of one replays nothing to the other,
    which gets a fresh, empty stream instead of the other session's result."""
    token = TokenStore(settings.state_dir).create("twins", "agent")
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            first, second = await open_session(http, url, token), await open_session(http, url, token)
            priming = await first_event_then_drop(http, url, first)
            assert (await resumed(http, url, first, priming["id"]))["id"] == 2  # the result is kept now
            headers = {**second, "Accept": "text/event-stream", "Last-Event-ID": priming["id"]}
            with pytest.raises(httpx2.ReadTimeout):
                async with http.stream("GET", f"{url}/mcp", headers=headers, timeout=httpx2.Timeout(10.0, read=1.0)) as stream:
                    assert stream.status_code == 200
                    async for event in events(stream.aiter_lines()):
                        assert not event.get("data"), event  # nothing of the first session's


async def test_replay_off_sends_no_event_ids(workspace: Any) -> None:
    from server.settings import load_settings

    settings = load_settings(workspace, transport="memory")
    settings = settings.model_copy(update={"http": HttpSettings(replay_bytes_per_session=0)})
    token = TokenStore(settings.state_dir).create("plain", "agent")
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            session = await open_session(http, url, token)
            async with http.stream("POST", f"{url}/mcp", json=CALL, headers=session) as stream:
                first = [event async for event in events(stream.aiter_lines())][0]
    assert "id" not in first and json.loads(first["data"])["id"] == 2


PRIMING = b"data: \r\n"  # the empty data line of a priming event (an id, a retry field, no message)


class CuttingProxy:
    """Relays HTTP to `upstream`, but drops the connection of each tools/call POST's SSE reply
    right after the first event that contains `after` (by default the priming event), as a
    connection lost mid-call would: nothing after that event reaches the client on that stream."""

    def __init__(self, upstream: str, after: bytes = PRIMING) -> None:
        self.upstream, self.after, self.cut = upstream, after, 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        body = await _request_body(receive)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"host", b"content-length", b"connection")]
        cut = scope["method"] == "POST" and b'"tools/call"' in body
        async with httpx2.AsyncClient(timeout=60.0) as http, http.stream(scope["method"], f"{self.upstream}{scope['path']}", headers=headers, content=body) as reply:
            relayed = [(k.encode(), v.encode()) for k, v in reply.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "connection")]
            await send({"type": "http.response.start", "status": reply.status_code, "headers": relayed})
            await (self._relay_until_cut(reply, send) if cut else _relay(reply, send))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_until_cut(self, reply: Any, send: Any) -> None:
        buffer = b""
        async for chunk in reply.aiter_raw():
            buffer += chunk
            while (end := _first_event_end(buffer)) >= 0:
                event, buffer = buffer[:end], buffer[end:]
                await send({"type": "http.response.body", "body": event, "more_body": True})
                if self.after in event:
                    self.cut += 1
                    return


async def _relay(reply: Any, send: Any) -> None:
    async for chunk in reply.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _lifespan(receive: Any, send: Any) -> None:
    while (message := await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def _request_body(receive: Any) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    return body


def _first_event_end(chunk: bytes) -> int:
    """Where the first SSE event of the chunk ends (after its blank line); -1 when it does not."""
    ends = [chunk.find(sep) + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if sep in chunk]
    return min(ends) if ends else -1


@asynccontextmanager
async def client_through(proxy: CuttingProxy, token: str) -> AsyncIterator[Client]:
    """A real MCP client (the Python SDK's, in a 2025-11-25 session) connected through `proxy`."""
    bind, sock = free_loopback_bind()
    with serving_in_background(proxy, bind, sock) as proxied:
        http = httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(60.0))
        async with Client(streamable_http_client(f"{proxied}/mcp", http_client=http), mode="legacy") as client:
            yield client


async def test_a_real_client_whose_call_stream_drops_reconnects_and_gets_the_result(settings: Settings) -> None:
    token = TokenStore(settings.state_dir).create("mobile", "agent")
    with mlgate_http(settings) as url:
        proxy = CuttingProxy(url)
        async with client_through(proxy, token) as client:
            result = await client.call_tool("list_runs", {})
    assert proxy.cut == 1  # the call's stream was dropped after its priming event
    assert not result.is_error and "runs" in result.structured_content, result


async def test_a_run_whose_stream_drops_mid_training_delivers_the_rest_of_its_progress_and_its_result(governed: dict[str, Any]) -> None:
    settings, seen = governed["settings"], []
    token = TokenStore(settings.state_dir).create("train-on-the-road", "agent")

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    with mlgate_http(settings) as url:
        proxy = CuttingProxy(url, after=b'"notifications/progress"')
        async with client_through(proxy, token) as client:
            result = await client.call_tool("run_experiment", {"reasoning": REASONING}, progress_callback=on_progress)
    assert proxy.cut == 1 and not result.is_error, result.structured_content
    assert result.structured_content["status"] == "FINISHED" and len(seen) >= 3 and seen == sorted(seen), seen


# --- the bounds, on the store itself ---------------------------------------------------------


class Message:
    def __init__(self, size: int) -> None:
        self.text = "x" * size

    def model_dump_json(self, **_: Any) -> str:
        return self.text


async def replayed(events_: SessionEvents, event_id: str) -> list[str]:
    sent: list[str] = []

    async def send(event: Any) -> None:
        sent.append(event.event_id)

    await events_.replay_after(event_id, send)
    return sent


async def test_a_session_keeps_its_newest_events_within_its_bytes() -> None:
    kept = SessionEvents(ReplayBudget(10_000), limit=1_000)
    ids = [kept.store(1, Message(300)) for _ in range(5)]  # 364 bytes each: two fit
    assert [kept.knows(i) for i in ids] == [False, False, False, True, True]
    assert await replayed(kept, ids[3]) == [ids[4]]


async def test_the_budget_over_all_sessions_bounds_each_and_comes_back_when_a_session_ends() -> None:
    budget = ReplayBudget(1_000)
    first = SessionEvents(budget, limit=1_000)
    first.store(1, Message(800))
    second = SessionEvents(budget, limit=1_000)
    assert not second.knows(second.store(1, Message(800)))  # no room while the first session holds it
    del first  # the session ended: its server task and context are gone
    assert budget.used == 0 and second.knows(second.store(1, Message(800)))


async def test_a_session_s_events_are_let_go_when_it_is_deleted_or_the_sdk_forgot_it(settings: Settings) -> None:
    """The real server's streamable HTTP app (without tokens: this is about sessions), behind the
    middleware, with a short idle timeout so that the SDK forgets an idle session within the test."""
    server, budget = build_server(settings, build_ports(settings)), ReplayBudget(1 << 20)
    app = server.streamable_http_app(streamable_http_path="/mcp", event_store=SessionEventStore(), session_idle_timeout=IDLE_S, host="127.0.0.1")
    live = live_sessions(server)
    bind, sock = free_loopback_bind()
    with serving_in_background(SessionEventsMiddleware(app, "/mcp", budget, 1 << 20, live), bind, sock) as url:
        async with httpx2.AsyncClient(timeout=10.0) as http:
            first = await open_session(http, url)
            each = budget.used  # its priming event and the initialize result
            second = await open_session(http, url)
            assert each > 0 and budget.used == 2 * each
            assert (await http.delete(f"{url}/mcp", headers=first)).status_code == 200
            await budget_back_to(budget, each)
            with anyio.fail_after(10):  # the SDK closes the second session after IDLE_S without a request
                while second["mcp-session-id"] in live():
                    await anyio.sleep(0.05)
            await open_session(http, url)  # the next session opened lets the idle one's events go
            await budget_back_to(budget, each)


async def budget_back_to(budget: ReplayBudget, used: int) -> None:
    """Waits (bounded) until the budget holds `used` bytes: a closed session's events are freed once
    its task has wound down, and its objects end in reference cycles."""
    with anyio.fail_after(10):
        while budget.used != used:
            gc.collect()
            await anyio.sleep(0.05)
