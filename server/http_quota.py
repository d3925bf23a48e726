"""Per-token quotas of the HTTP app: requests a token holds open at once and streamable HTTP
sessions it holds, each refused past its limit with a 429 naming what to close (server/http.py
puts TokenQuota after authentication)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Receive, Scope, Send

from server.settings import HttpSettings

MCP_PATH = "/mcp"


async def json_reply(send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": data})


class TokenQuota:
    """Bounds what one token holds: requests open at once (an SSE session is one open request, so
    is a `subscriptions/listen` stream or a call in flight) and streamable HTTP sessions. Past
    either, 429 with what to close, so one agent token cannot take the sessions (10 000, shared)
    or connections every client needs. Runs after authentication: quotas are per verified token
    name; an unauthenticated request passes on to its 401."""

    def __init__(self, app: ASGIApp, limits: HttpSettings, sessions_of: Callable[[str], int]) -> None:
        self._app, self._limits, self._sessions_of = app, limits, sessions_of
        self._open: dict[str, int] = {}
        # initialize requests past the check whose session the SDK has not registered yet: without
        # them, a burst sent at once would all pass a check that counts registered sessions only
        self._opening: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = _token_name(scope) if scope["type"] == "http" else None
        if name is None:
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(name, scope)
        if refusal is not None:
            await json_reply(send, 429, refusal, [(b"retry-after", b"5")])
            return
        opening = _Opening(self._opening, name) if _opens_session(scope) else None
        _count(self._open, name, 1)
        try:
            await self._app(scope, receive, opening.until_answered(send) if opening else send)
        finally:
            _count(self._open, name, -1)
            if opening:
                opening.end()

    def _refusal(self, name: str, scope: Scope) -> dict[str, str] | None:
        if self._open.get(name, 0) >= self._limits.max_open_requests_per_token:
            limit = self._limits.max_open_requests_per_token
            return {"error": "too_many_open_requests", "error_description": f"token {name!r} holds {limit} open requests (the limit): close SSE or listen streams it no longer reads, or wait for calls in flight"}
        if _opens_session(scope) and self._sessions_of(name) + self._opening.get(name, 0) >= self._limits.max_sessions_per_token:
            limit = self._limits.max_sessions_per_token
            return {"error": "too_many_sessions", "error_description": f"token {name!r} holds {limit} sessions (the limit): end sessions it no longer uses (DELETE {MCP_PATH} with their mcp-session-id); idle ones close after 30 minutes"}
        return None


def _token_name(scope: Scope) -> str | None:
    """The verified token's name (the authentication middleware has run), None when unauthenticated."""
    token = getattr(scope.get("user"), "access_token", None)
    return getattr(token, "client_id", None)


class _Opening:
    """One initialize request counted against its token's sessions until the answer starts (the
    SDK has registered the session, or refused it, by then) or the request ends."""

    def __init__(self, counts: dict[str, int], name: str) -> None:
        self._counts, self._name, self._pending = counts, name, True
        _count(counts, name, 1)

    def end(self) -> None:
        if self._pending:
            self._pending = False
            _count(self._counts, self._name, -1)

    def until_answered(self, send: Send) -> Send:
        async def wrapped(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                self.end()
            await send(message)

        return wrapped


def _count(counts: dict[str, int], name: str, change: int) -> None:
    counts[name] = counts.get(name, 0) + change
    if not counts[name]:
        del counts[name]


def _opens_session(scope: Scope) -> bool:
    """A POST to /mcp without a session id, in a handshake protocol version (or none named), opens a
    streamable HTTP session (initialize); a 2026-07-28 request is served statelessly and opens none."""
    headers = {k.lower(): v for k, v in scope.get("headers") or []}
    version = headers.get(b"mcp-protocol-version")
    stateful = version is None or version.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS
    return scope["method"] == "POST" and scope["path"].rstrip("/") == MCP_PATH and b"mcp-session-id" not in headers and stateful


def sessions_counter(server: MCPServer) -> Callable[[str], int]:
    """How many streamable HTTP sessions a token name holds now. The SDK keeps each session's
    verified owner (`_session_owners`, forgotten when the session ends or idles out); it has no
    public count, and tests/server/test_http_quota.py fails if that changes."""

    def count(name: str) -> int:
        owners = getattr(server.session_manager, "_session_owners", {})
        return sum(1 for owner in list(owners.values()) if owner.get("client_id") == name)

    return count
