"""The HTTP transports: one ASGI app serving streamable HTTP at /mcp and SSE at /sse.

Every request needs a bearer token from the token store (401 otherwise), and a response it streams
ends at its next message once the token is revoked; the Host and Origin
headers are checked before anything else (421 / 403), on loopback against the loopback names and
otherwise against the configured allowed hosts and origins. Binding a non-loopback address is
refused unless tokens exist and allowed hosts are configured.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from server.app import build_server
from server.auth import TokenStore, TokenVerifier
from server.http_events import header, resumable_streams, without_header
from server.http_quota import MCP_PATH, TokenQuota, json_reply, sessions_counter
from server.identity import HTTP_TRANSPORT, SSE_MESSAGES_PATH
from server.ports import Ports, build_ports
from server.settings import HttpSettings, Settings
from tools.errors import InvalidInput

SSE_PATH = "/sse"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
RECONNECT_AFTER_MS = 1000


@dataclass(frozen=True)
class BindAddress:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_bind(text: str) -> BindAddress:
    """`HOST:PORT` or `[IPV6]:PORT`. Raises InvalidInput for anything else."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"cannot bind {text!r}", "give HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765", rule_id="serve.bind")
    return BindAddress(host, int(port))


def check_can_serve(bind: BindAddress, http: HttpSettings, store: TokenStore) -> None:
    """Raises InvalidInput when serving HTTP on `bind` would be unsafe."""
    if not store.records():
        raise InvalidInput(
            "HTTP serving needs at least one bearer token and none exists",
            "create one with `mlgate token create --name NAME --role agent --workspace DIR`, then start again",
            rule_id="serve.no_tokens",
        )
    if not bind.is_loopback and not http.allowed_hosts:
        raise InvalidInput(
            f"refusing to bind the non-loopback address {bind.host}: no allowed hosts are configured",
            "set http.allowed_hosts (and http.allowed_origins for browsers) in <state_dir>/server.yaml, or bind 127.0.0.1",
            rule_id="serve.non_loopback",
        )


def transport_security(bind: BindAddress, http: HttpSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection, always on: loopback names on loopback, else the configured ones."""
    if bind.is_loopback:  # bare names too: clients leave port 80 out of Host and Origin
        hosts = [*LOOPBACK_NAMES, *(f"{name}:*" for name in LOOPBACK_NAMES)]
        origins = [*(f"http://{name}" for name in LOOPBACK_NAMES), *(f"http://{name}:*" for name in LOOPBACK_NAMES)]
    else:
        hosts, origins = list(http.allowed_hosts), list(http.allowed_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def auth_options(store: TokenStore, base_url: str) -> dict[str, Any]:
    """The MCPServer keyword arguments that put every HTTP route behind the token verifier."""
    # Tokens are issued by this server's operator (`mlgate token create`), bound to this server
    # only, so the verifier itself is the audience check.
    settings = AuthSettings(issuer_url=base_url, resource_server_url=base_url + MCP_PATH, validate_token_resource=False)
    return {"token_verifier": TokenVerifier(store), "auth": settings}


TOKEN_NEEDED = (
    "mlgate needs a bearer token issued by its operator (mlgate token create); "
    "send the header Authorization: Bearer <token>. This server offers no OAuth sign-in."
)
# Paths OAuth clients probe for an authorization server after a 401; mlgate has none, and says so in
# JSON (a plain-text 404 surfaces in some clients as a JSON parse error instead of the reason).
AUTHORIZATION_SERVER_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")


class TokenHint:
    """Rewrites the SDK's 401 ("Authentication required") to say what is needed, and answers the
    OAuth authorization-server discovery paths with a JSON 404 carrying the same sentence."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
        elif scope["path"].startswith(AUTHORIZATION_SERVER_PATHS):
            await json_reply(send, 404, {"error": "no_authorization_server", "error_description": TOKEN_NEEDED})
        else:
            await self._app(scope, receive, _rewrite_401(send))


def _rewrite_401(send: Send) -> Send:
    state = {"rewriting": False}

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] == 401:
            state["rewriting"] = True
            header = dict(message.get("headers") or []).get(b"www-authenticate", b"Bearer").decode("latin-1")
            header = header.replace('error_description="Authentication required"', f'error_description="{TOKEN_NEEDED}"')
            await json_reply(send, 401, {"error": "invalid_token", "error_description": TOKEN_NEEDED}, [(b"www-authenticate", header.encode("latin-1"))])
        elif not state["rewriting"]:
            await send(message)

    return wrapped


class HostOriginGuard:
    """Rejects a foreign Host (421) or Origin (403) before authentication or routing."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self._app = app
        self._checker = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = await self._checker.validate_request(Request(scope), is_post=False)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)


class NoStreamReplay:
    """Drops Last-Event-ID from a GET on /mcp when replay is off (`replay_bytes_per_session: 0`):
    no event ids are sent then and there is nothing to replay; the SDK's replay path, reached by
    that header, would answer nothing (a 500). Without it the GET gets a fresh event stream."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].rstrip("/") == MCP_PATH:
            scope = without_header(scope, b"last-event-id")
        await self._app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    """The bearer token of a request, read as the SDK's auth backend reads it."""
    text = header(scope, b"authorization")
    return text[7:] if text is not None and text.lower().startswith("bearer ") else None


class RevokedTokenStreams:
    """Ends a response once its bearer token stops verifying (revoked): each body chunk of a
    successful response is preceded by the check, so a stream the token opened (a
    `subscriptions/listen` stream, an SSE reply) delivers nothing more after a revocation. The body
    is ended and the app is told the client left, as for a dropped connection."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self._app, self._verifier = app, verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer(scope) if scope["type"] == "http" else None
        if token is None:
            await self._app(scope, receive, send)
            return
        revoked = anyio.Event()
        await self._app(scope, _disconnect_when(revoked, receive), self._checked(token, revoked, send))

    def _checked(self, token: str, revoked: anyio.Event, send: Send) -> Send:
        state = {"ok": False}

        async def checked(message: dict[str, Any]) -> None:
            if revoked.is_set():
                return
            if message["type"] == "http.response.start":
                state["ok"] = message["status"] < 400  # refusals (401) are the auth middleware's own answer
            elif message["type"] == "http.response.body" and state["ok"] and await self._verifier.verify_token(token) is None:
                revoked.set()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        return checked


def _disconnect_when(revoked: anyio.Event, receive: Receive) -> Receive:
    """`receive`, answering http.disconnect once `revoked` is set, also to a call already waiting."""

    async def wrapped() -> dict[str, Any]:
        message: dict[str, Any] = {"type": "http.disconnect"}
        if revoked.is_set():
            return message
        async with anyio.create_task_group() as group:

            async def take() -> None:
                nonlocal message
                message = await receive()
                group.cancel_scope.cancel()

            async def stop() -> None:
                await revoked.wait()
                group.cancel_scope.cancel()

            group.start_soon(take)
            group.start_soon(stop)
        return message

    return wrapped


def live_sessions(server: MCPServer) -> Callable[[], Collection[str]]:
    """The ids of the streamable HTTP sessions the SDK holds now (`_server_instances`, private like
    `_session_owners` above; tests/server/test_http_events.py fails if it changes)."""
    return lambda: getattr(server.session_manager, "_server_instances", {}).keys()


def _unique_routes(*apps: Starlette) -> list[BaseRoute]:
    """Both SDK apps carry the protected-resource metadata route; keep one of each path."""
    routes: dict[str, BaseRoute] = {}
    for app in apps:
        for route in app.routes:
            routes.setdefault(getattr(route, "path", repr(route)), route)
    return list(routes.values())


def build_http_app(settings: Settings, bind: BindAddress, *, ports: Ports | None = None) -> Starlette:
    """mlgate's HTTP app. Raises InvalidInput when serving would be unsafe (see check_can_serve)."""
    settings = settings.model_copy(update={"transport": HTTP_TRANSPORT})
    store = TokenStore(settings.state_dir)
    check_can_serve(bind, settings.http, store)
    ports = ports or build_ports(settings)
    server = build_server(settings, ports, auth=auth_options(store, settings.http.public_url or bind.url))
    return combined_app(server, bind, transport_security(bind, settings.http), on_shutdown=ports.audit.sync, limits=settings.http)


def combined_app(server: MCPServer, bind: BindAddress, security: TransportSecuritySettings, on_shutdown: Callable[[], None] | None = None, limits: HttpSettings | None = None) -> Starlette:
    """Streamable HTTP (/mcp) and SSE (/sse, /messages/) of `server` in one app behind the Host/Origin guard."""
    limits = limits or HttpSettings()
    resumable = resumable_streams(MCP_PATH, limits.replay_bytes_per_session, limits.replay_bytes_total, live_sessions(server))
    store, replay = resumable or (None, Middleware(NoStreamReplay))
    retry = RECONNECT_AFTER_MS if store is not None else None  # the `retry:` of priming events: when a dropped client comes back
    streamable = server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=security, host=bind.host, event_store=store, retry_interval=retry)
    sse = server.sse_app(sse_path=SSE_PATH, message_path=SSE_MESSAGES_PATH, transport_security=security, host=bind.host)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # The session manager of /mcp must run for the whole life of the combined app.
        async with server.session_manager.run():
            yield
        if on_shutdown is not None:
            on_shutdown()

    # Both SDK apps install the same bearer-auth middleware; one copy serves both. The SDK keeps the
    # verifier it was given (auth_options) as `_token_verifier`; open streams are checked with it too.
    verifier = getattr(server, "_token_verifier", None)
    revocation = [Middleware(RevokedTokenStreams, verifier=verifier)] if verifier is not None else []
    quota = [Middleware(TokenQuota, limits=limits, sessions_of=sessions_counter(server))]
    middleware = [Middleware(HostOriginGuard, security=security), Middleware(TokenHint), replay, *revocation, *streamable.user_middleware, *quota]
    return Starlette(routes=_unique_routes(streamable, sse), middleware=middleware, lifespan=lifespan)


GRACEFUL_SHUTDOWN_S = 5  # open SSE streams are cut after this on shutdown


def uvicorn_config(app: ASGIApp, bind: BindAddress) -> uvicorn.Config:
    return uvicorn.Config(app, host=bind.host, port=bind.port, log_level="warning", server_header=False, lifespan="on", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)


def free_loopback_bind() -> tuple[BindAddress, socket.socket]:
    """A bound (not yet listening) socket on a free 127.0.0.1 port, for tests and benchmarks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return BindAddress("127.0.0.1", sock.getsockname()[1]), sock


@contextmanager
def serving_in_background(app: ASGIApp, bind: BindAddress, sock: socket.socket, *, timeout: float = 30.0) -> Iterator[str]:
    """Runs uvicorn on a thread over `sock`; yields the base URL once it accepts connections.

    Raises TimeoutError if it does not start within `timeout` seconds."""
    server = uvicorn.Server(uvicorn_config(app, bind))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_until(lambda: server.started or not thread.is_alive(), timeout)
        if not server.started:
            raise RuntimeError("the HTTP server stopped while starting")
        yield bind.url
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def _wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the HTTP server did not start within {timeout}s")
        threading.Event().wait(0.005)
