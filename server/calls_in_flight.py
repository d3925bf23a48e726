"""Governed calls one remote token runs at once, counted by the enforcement point from the call's
start to its handler's end.

The HTTP app's quota (server/http_quota.py) counts requests held open, which misses two kinds of
calls that keep running: a call posted over SSE (`POST /messages/` is answered 202 at once) and a
streamable HTTP call whose POST the client dropped (the MCP spec does not treat a dropped
connection as a cancellation, so the handler runs on). Counted here, neither lets one token run
more calls at once than `http.max_open_requests_per_token`. stdio and in-memory calls (one local
client) are not counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from tools.base import CallContext
from tools.errors import GovernanceError

REMOTE_TRANSPORTS = frozenset({"streamable-http", "sse"})  # server/identity.py transport_of


class TooManyCalls(GovernanceError):
    rule_id = "quota.calls_in_flight"


class CallsInFlight:
    """Per token name, the governed calls running now; `limit` None counts nothing. Used on the
    event loop only (Enforcer.call), so the counts need no lock."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}

    def take(self, ctx: CallContext) -> AbstractContextManager[None]:
        """Counts the call until the returned context exits (enter it at once). Raises TooManyCalls,
        counting nothing, when the caller's token already runs `limit` calls."""
        name = ctx.principal.name if self.limit is not None and ctx.transport in REMOTE_TRANSPORTS else None
        if name is None:
            return nullcontext()
        if self._running.get(name, 0) >= self.limit:
            raise _too_many(name, self.limit)
        self._running[name] = self._running.get(name, 0) + 1
        return self._counted(name)

    @contextmanager
    def _counted(self, name: str) -> Iterator[None]:
        try:
            yield
        finally:
            self._running[name] -= 1
            if not self._running[name]:
                del self._running[name]

    def running(self, name: str) -> int:
        return self._running.get(name, 0)


def _too_many(name: str, limit: int) -> TooManyCalls:
    return TooManyCalls(f"token {name!r} already runs {limit} calls at once (the limit), counting calls whose connection was dropped",
                        "wait for a call in flight to return, or cancel one (notifications/cancelled, or cancel_run for a training run); use detach=true for long runs")
