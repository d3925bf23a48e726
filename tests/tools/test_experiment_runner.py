"""A stage's step metrics reach MLflow in batches (tools/experiment_runner.StepMetrics): every step
is kept with its number, written when FLUSH_SECONDS have passed since the last write and when the
stage ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from server.tracking import MlflowTracking
from tools.experiment_runner import StepMetrics

pytestmark = pytest.mark.anyio


class SettableClock:
    def __init__(self) -> None:
        self.at = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def lab(tmp_path: Path) -> SimpleNamespace:
    clock = SettableClock()
    tracking = MlflowTracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts", clock=clock)
    run_id = tracking.start_run(tracking.get_or_create_experiment("steps"), {})
    return SimpleNamespace(clock=clock, tracking=tracking, run_id=run_id, steps=StepMetrics(SimpleNamespace(clock=clock, tracking=tracking), run_id))


def logged(lab: SimpleNamespace) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in lab.tracking.client.get_metric_history(lab.run_id, "fold-0.train_loss")]


async def test_steps_wait_for_the_flush_interval_then_are_written_together(lab: SimpleNamespace) -> None:
    await lab.steps.add({"fold-0.train_loss": 0.7}, 1)
    lab.clock.at += timedelta(seconds=StepMetrics.FLUSH_SECONDS - 1)
    await lab.steps.add({"fold-0.train_loss": 0.6}, 2)
    assert logged(lab) == []
    lab.clock.at += timedelta(seconds=1)
    await lab.steps.add({"fold-0.train_loss": 0.5}, 3)
    assert logged(lab) == [(1, 0.7), (2, 0.6), (3, 0.5)]


async def test_the_end_of_a_stage_writes_what_is_left_and_empty_steps_write_nothing(lab: SimpleNamespace) -> None:
    await lab.steps.add({}, 1)
    await lab.steps.add({"fold-0.train_loss": 0.4}, 2)
    await lab.steps.flush()
    await lab.steps.flush()
    assert logged(lab) == [(2, 0.4)]
