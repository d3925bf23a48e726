"""Who is calling, over which transport.

stdio and in-memory calls carry no credentials: the principal is the one the server was started
for (settings), or, for a stdio server a human or operator started with their own token, that
token's principal, checked again at every call (server/credentials.py TokenHolder). HTTP and SSE
calls carry a bearer token the auth middleware has verified; the token's client id is the
principal and its `role:<role>` scope is the role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token

from policies import ROLES, Principal
from tools.base import CallContext

ROLE_SCOPE_PREFIX = "role:"
# The transport name an HTTP server is started with; each call then names its own transport.
HTTP_TRANSPORT = "http"
SSE_MESSAGES_PATH = "/messages/"
UNAUTHENTICATED = Principal("unauthenticated", "agent")


def role_from_scopes(scopes: list[str]) -> str | None:
    roles = [s.removeprefix(ROLE_SCOPE_PREFIX) for s in scopes if s.startswith(ROLE_SCOPE_PREFIX)]
    return roles[0] if len(roles) == 1 and roles[0] in ROLES else None


def _http_request(context: Any) -> Any:
    try:
        return context.request_context.request
    except (AttributeError, ValueError, LookupError):
        return None


def _token_of(request: Any) -> Any:
    user = request.scope.get("user") if hasattr(request, "scope") else None
    token = getattr(user, "access_token", None)
    return token if token is not None else get_access_token()


def transport_of(request: Any) -> str:
    """SSE clients post their calls to the SSE message endpoint; everything else came over /mcp."""
    path = request.url.path if hasattr(request, "url") else ""
    return "sse" if path.startswith(SSE_MESSAGES_PATH) else "streamable-http"


class Identifier:
    """Builds the CallContext of a call from the MCP request context."""

    def __init__(self, local: Principal | Callable[[], Principal], local_transport: str, ports: Any) -> None:
        self._local = local
        self._local_transport = local_transport
        self._ports = ports

    def principal_for(self, context: Any) -> tuple[Principal, str]:
        request = _http_request(context)
        if request is None:
            # An HTTP server has no local principal: a call without a request is no one's.
            if self._local_transport == HTTP_TRANSPORT:
                return UNAUTHENTICATED, self._local_transport
            return (self._local() if callable(self._local) else self._local), self._local_transport
        token = _token_of(request)
        role = role_from_scopes(list(token.scopes)) if token is not None else None
        if token is None or role is None:
            # Unreachable behind the auth middleware; fail closed to the weakest role anyway.
            return UNAUTHENTICATED, transport_of(request)
        # AccessToken.token holds the token's stored hash (server/auth.py); its prefix names the credential.
        credential = f"{token.client_id}:{str(token.token)[:12]}"
        return Principal(token.client_id, role, credential), transport_of(request)  # type: ignore[arg-type]

    def context_for(self, context: Any) -> CallContext:
        principal, transport = self.principal_for(context)

        return CallContext(principal=principal, transport=transport, ports=self._ports, progress=increasing(context.report_progress))


def increasing(report: Callable[[float, float | None, str | None], Awaitable[None]]) -> Callable[[float, float | None, str | None], Awaitable[None]]:
    """A progress reporter that forwards only values above the last one sent: the MCP spec asks
    that progress increase with every notification, and clients (the Inspector, Claude Code)
    show a repeated value as a stall."""
    last: list[float] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if last and done <= last[0]:
            return
        last[:] = [done]
        await report(done, total, message)

    return progress

