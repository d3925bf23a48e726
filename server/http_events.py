"""Resumable streamable HTTP responses: each session's SSE events, kept so a dropped stream resumes.

A remote agent's connection can drop while a call runs (a proxy's idle timeout, a laptop that
sleeps). With SSE event ids, its client reconnects with `GET /mcp` and `Last-Event-ID` and gets
what it missed: the progress and the result of the call, which the server went on computing.

The SDK takes one `EventStore` for every session, and the stream ids it passes are the JSON-RPC
request ids, which every client numbers from 1: one store keyed by them would hand one session's
results to another. So the SDK is given `SessionEventStore`, which keeps nothing itself: each call
goes to the `SessionEvents` of the session the request belongs to, set in a context variable by
`SessionEventsMiddleware` (an initialize request gets a new one; the session's server task is
started from that request and inherits it). A session's events are only ever replayed to that
session, which the SDK already binds to the token that opened it.

Memory is bounded twice: per session (`replay_bytes_per_session`, oldest events dropped first)
and over all sessions (`replay_bytes_total`). An event id that is no longer kept, or was never
this session's, resumes nothing: the GET gets a fresh event stream, as without an event store.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection
from contextvars import ContextVar
from typing import Any

from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CURRENT: ContextVar[weakref.ref[SessionEvents] | None] = ContextVar("mlgate_session_events", default=None)
_SESSION_HEADER = b"mcp-session-id"
_LAST_EVENT_HEADER = b"last-event-id"


class ReplayBudget:
    """Bytes of kept events over all sessions, shared by their SessionEvents. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._mutex = threading.Lock()

    def take(self, size: int) -> bool:
        with self._mutex:
            if self._used + size > self.limit:
                return False
            self._used += size
            return True

    def give_back(self, size: int) -> None:
        with self._mutex:
            self._used -= size

    @property
    def used(self) -> int:
        return self._used


class SessionEvents:
    """One session's events in order: {event id: (stream id, message or None for a priming event, size)}."""

    def __init__(self, budget: ReplayBudget, limit: int) -> None:
        self._budget, self._limit = budget, limit
        self._events: OrderedDict[str, tuple[StreamId, Any, int]] = OrderedDict()
        self._held = [0]  # bytes this session holds of the budget; the finalizer returns them
        weakref.finalize(self, _release, budget, self._held)  # a session gone (its task ended) frees its share

    def store(self, stream_id: StreamId, message: Any) -> EventId:
        event_id = secrets.token_hex(16)  # unguessable: an id names one event of one session
        size = _size(message)
        self._make_room(size)
        if size <= self._limit and self._budget.take(size):
            self._events[event_id] = (stream_id, message, size)
            self._held[0] += size
        return event_id  # not kept: resuming from it resumes nothing

    def knows(self, event_id: str) -> bool:
        return event_id in self._events

    async def replay_after(self, event_id: EventId, send: EventCallback) -> StreamId | None:
        """Sends the kept messages of `event_id`'s stream that came after it; that stream's id."""
        if event_id not in self._events:
            return None
        stream_id, seen = self._events[event_id][0], False
        for key, (stream, message, _) in list(self._events.items()):
            if seen and stream == stream_id and message is not None:
                await send(EventMessage(message, key))
            seen = seen or key == event_id
        return stream_id

    def _make_room(self, size: int) -> None:
        while self._events and (self._held[0] + size > self._limit or self._budget.used + size > self._budget.limit):
            _, (_, _, dropped) = self._events.popitem(last=False)
            self._held[0] -= dropped
            self._budget.give_back(dropped)


def _release(budget: ReplayBudget, held: list[int]) -> None:
    budget.give_back(held[0])


def _size(message: Any) -> int:
    """Bytes the event's message takes as JSON (a priming event: a few)."""
    return 64 if message is None else len(message.model_dump_json(by_alias=True, exclude_none=True)) + 64


def resumable_streams(path: str, per_session: int, total: int, live: Callable[[], Collection[str]]) -> tuple[SessionEventStore, Middleware] | None:
    """The store to give the SDK and the middleware that routes it, or None when replay is off (0).
    `live`: the ids of the sessions the SDK holds now."""
    if per_session <= 0 or total <= 0:
        return None
    return SessionEventStore(), Middleware(SessionEventsMiddleware, path=path, budget=ReplayBudget(total), per_session=per_session, live=live)


class SessionEventStore(EventStore):
    """The store the SDK holds: each call goes to the current request's session (SessionEvents)."""

    async def store_event(self, stream_id: StreamId, message: Any) -> EventId:
        events = _current()
        return secrets.token_hex(16) if events is None else events.store(stream_id, message)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        events = _current()
        return None if events is None else await events.replay_after(last_event_id, send_callback)


def _current() -> SessionEvents | None:
    """The current request's session events; None outside a session or once it ended."""
    held = _CURRENT.get()
    return None if held is None else held()


class SessionEventsMiddleware:
    """Sets the current session's events for each request on the MCP path; drops a Last-Event-ID the
    session does not hold (the SDK would answer it with an empty stream), so the GET gets a fresh one.

    The events of the sessions `live()` names are held here, and only here: the context variable
    holds a weak reference, because contexts outlive their session (asyncio keeps a cancelled timer,
    and the context it was scheduled in, until its time comes: 30 minutes for the idle timeout). A
    session's events are let go when it is deleted or, once the SDK forgot it (idle), at the next
    session opened, and their bytes go back to the budget then."""

    def __init__(self, app: ASGIApp, path: str, budget: ReplayBudget, per_session: int, live: Callable[[], Collection[str]]) -> None:
        self._app, self._path, self._budget, self._per_session, self._live = app, path, budget, per_session, live
        self._sessions: dict[str, SessionEvents] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self._path:
            await self._app(scope, receive, send)
            return
        session = header(scope, _SESSION_HEADER)
        if session is None:
            events = SessionEvents(self._budget, self._per_session)  # held by this frame until registered
            send = self._registering(events, send)
        else:
            events = self._sessions.get(session)
            scope = _without_unknown_resume(scope, events)
        token = _CURRENT.set(weakref.ref(events) if events is not None else None)
        try:
            await self._app(scope, receive, send)
        finally:
            _CURRENT.reset(token)
            if session is not None and scope["method"] == "DELETE" and session not in self._live():
                self._sessions.pop(session, None)  # the session ended: its events go, their bytes with them

    def _forget_ended(self) -> None:
        live = self._live()
        for ended in [s for s in self._sessions if s not in live]:
            del self._sessions[ended]

    def _registering(self, events: SessionEvents, send: Send) -> Send:
        """`send`, noting the events under the session id the opening response names."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                opened = dict(message.get("headers") or []).get(_SESSION_HEADER)
                if opened is not None:  # a session opened: the SDK may have forgotten others meanwhile
                    self._forget_ended()
                    self._sessions[opened.decode("latin-1")] = events
            await send(message)

        return wrapped


def header(scope: Scope, name: bytes) -> str | None:
    """The value of a request header (`name` in lower case), or None."""
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def without_header(scope: Scope, name: bytes) -> Scope:
    """The request without the header `name` (lower case)."""
    return {**scope, "headers": [(k, v) for k, v in scope.get("headers") or [] if k.lower() != name]}


def _without_unknown_resume(scope: Scope, events: SessionEvents | None) -> Scope:
    last = header(scope, _LAST_EVENT_HEADER)
    return scope if last is None or (events is not None and events.knows(last)) else without_header(scope, _LAST_EVENT_HEADER)
