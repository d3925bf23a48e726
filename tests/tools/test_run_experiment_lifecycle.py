"""Long-run behaviour of run_experiment: progress, cancellation, run slots."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import build_server
from tests.tools.test_run_experiment import REASONING, _experiments, governed  # noqa: F401 - fixture

pytestmark = pytest.mark.anyio
SLOW_FEATURES = "import time\n\ndef build_features(frame):\n    time.sleep(120)\n    return frame\n"


async def _wait_for_status(governed: dict[str, Any], status: str) -> list[dict[str, Any]]:
    with anyio.fail_after(60):
        while True:
            runs = governed["ports"].tracking.search_runs(_experiments(governed))
            if runs and runs[0]["status"] == status:
                return runs
            await anyio.sleep(0.05)


async def test_progress_is_reported_per_stage_and_mirrored_as_step_metrics(governed: dict[str, Any]) -> None:
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async with Client(build_server(governed["settings"], governed["ports"])) as client:
        result = await client.call_tool("run_experiment", {"reasoning": REASONING}, progress_callback=on_progress)
    assert not result.is_error
    messages = [m or "" for _, _, m in events]
    assert any(m.startswith("fold-0: round") for m in messages) and any(m.startswith("final:") for m in messages)
    values = [p for p, _, _ in events]
    assert all(a < b for a, b in zip(values, values[1:])), values  # strictly increasing, no repeats
    history = governed["ports"].tracking.client.get_metric_history(result.structured_content["run_id"], "final.train_loss")
    assert len(history) >= 2 and [m.step for m in history] == sorted(m.step for m in history)


async def test_cancelling_a_call_kills_the_child_and_marks_the_run_killed(governed: dict[str, Any]) -> None:
    (governed["workspace"] / "src/features.py").write_text(SLOW_FEATURES)
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and "training on" in message:
            started.set()

    async with Client(build_server(governed["settings"], governed["ports"])) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: client.call_tool("run_experiment", {"reasoning": REASONING}, progress_callback=on_progress))
            with anyio.fail_after(60):
                await started.wait()
            group.cancel_scope.cancel()
    runs = await _wait_for_status(governed, "KILLED")
    assert runs[0]["tags"]["mlgate.end_reason"] == "cancelled by the client"
    outcome = [r for r in governed["ports"].audit.tail(5) if r.get("kind") == "outcome"][-1]
    assert outcome["status"] == "cancelled" and outcome["run_id"] == runs[0]["run_id"]


async def test_a_second_run_while_the_slot_is_busy_is_refused(governed: dict[str, Any]) -> None:
    (governed["workspace"] / "src/features.py").write_text(SLOW_FEATURES)
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if message and "training on" in message:
            started.set()

    async with Client(build_server(governed["settings"], governed["ports"])) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: client.call_tool("run_experiment", {"reasoning": REASONING}, progress_callback=on_progress))
            with anyio.fail_after(60):
                await started.wait()
            second = await client.call_tool("run_experiment", {"reasoning": REASONING})
            group.cancel_scope.cancel()
    assert second.is_error and second.structured_content["rule_id"] == "training.concurrency"
    await _wait_for_status(governed, "KILLED")
