"""Runs trained inside a live run_experiment call of this server process (not detached), by run id,
each with the cancel scope that stops it: cancel_run reaches them here.

A client that lost its connection cannot send `notifications/cancelled` for its call any more, and
over streamable HTTP a dropped connection does not cancel the call: without this, such a run trains
on to its end or its timeout, holding a slot. The registry is in-process state: a run attached to
a call of another server process (a replica) is not here, and cancel_run says so
(`cancel.running`). Nothing in it is read from a file, so nothing an agent writes can add an entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio

CLIENT_REASON = "cancelled by the client"
TOOL_REASON = "cancelled through cancel_run"


@dataclass
class AttachedRun:
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: anyio.Event = field(default_factory=anyio.Event)
    cancelled_by: str | None = None  # the principal whose cancel_run stopped it

    def reason(self) -> str:
        """How the run ended when a cancellation stopped it (the MLflow end reason)."""
        return TOOL_REASON if self.cancelled_by is not None else CLIENT_REASON


class AttachedRuns:
    def __init__(self) -> None:
        self._runs: dict[str, AttachedRun] = {}

    @contextmanager
    def training(self, run_id: str) -> Iterator[AttachedRun]:
        """The block trains `run_id`: cancel() cancels it. A cancellation through cancel() ends the
        block quietly (the caller checks `cancelled_by`); the client's own cancellation propagates."""
        entry = AttachedRun()
        self._runs[run_id] = entry
        try:
            with entry.scope:
                yield entry
        finally:
            del self._runs[run_id]
            entry.ended.set()

    def here(self, run_id: str) -> bool:
        return run_id in self._runs

    async def cancel(self, run_id: str, principal: str, grace_s: float) -> str:
        """Cancel the call training `run_id` and wait (at most `grace_s`) for it to end the run:
        "cancelled", "cancelling" (still ending after the grace) or "not_running" (no such call)."""
        entry = self._runs.get(run_id)
        if entry is None:
            return "not_running"
        entry.cancelled_by = entry.cancelled_by or principal
        entry.scope.cancel()
        with anyio.move_on_after(grace_s):
            await entry.ended.wait()
        return "cancelled" if entry.ended.is_set() else "cancelling"
