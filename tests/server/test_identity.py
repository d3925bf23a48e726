"""server/identity.increasing: progress reaches the client only when it grows."""

from __future__ import annotations

import pytest

from server.identity import increasing

pytestmark = pytest.mark.anyio


async def test_repeated_or_falling_progress_values_are_not_sent() -> None:
    sent: list[tuple[float, float | None, str | None]] = []

    async def record(done: float, total: float | None, message: str | None) -> None:
        sent.append((done, total, message))

    progress = increasing(record)
    for done, message in ((0, "waiting"), (0, "waiting"), (0.5, "fold_1: epoch 1"), (0.5, "fold_1: epoch 1"), (2, "final"), (1.5, "late"), (2, "evaluating"), (2.25, "done")):
        await progress(done, 3, message)
    assert [s[0] for s in sent] == [0, 0.5, 2, 2.25]
    assert all(a < b for a, b in zip([s[0] for s in sent], [s[0] for s in sent][1:]))
