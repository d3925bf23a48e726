"""Run slots: at most N training runs at once (configs/policy.yaml training.max_concurrent_runs):
the runs this server process trains plus the detached runs whose worker is alive (`external`,
server/detached_runs.py; a dead worker's run holds no slot). A busy server refuses or makes the
caller wait, by config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio

from tools.errors import PolicyDenied

WAIT_NOTICE_S = 5.0


class RunSlots:
    def __init__(self, limit: int, when_busy: str = "refuse", external: Callable[[], int] | None = None) -> None:
        self._limit = limit
        self._when_busy = when_busy
        self._running = 0
        self._freed = anyio.Event()
        self.external = external

    @property
    def running(self) -> int:
        return self._running + (self.external() if self.external is not None else 0)

    @asynccontextmanager
    async def hold(self, on_wait: Callable[[str], Awaitable[None]]) -> AsyncIterator[None]:
        """Holds a slot for the body. Raises PolicyDenied when busy and configured to refuse."""
        while self.running >= self._limit:
            if self._when_busy != "wait":
                raise PolicyDenied(f"{self.running} runs are in progress; the limit is {self._limit}", "wait for a run to finish and call run_experiment again", rule_id="training.concurrency")
            await on_wait(f"waiting for a run slot ({self.running}/{self._limit} busy)")
            with anyio.move_on_after(WAIT_NOTICE_S):
                await self._freed.wait()
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._freed.set()
            self._freed = anyio.Event()
