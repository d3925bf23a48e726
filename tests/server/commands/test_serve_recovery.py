"""`mlgate serve` start-up recovery as a real stdio process: a resource read at once races the
recovery thread for MLflow's first import, and a store shared with another project."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from server.audit import read_tail
from server.settings import Settings
from server.tracking import MlflowTracking
from tests.e2e.transports import stdio
from tests.server.test_tracking import dead_process_identity

pytestmark = pytest.mark.anyio
START_TIMEOUT_S = 60.0
OTHER_MODEL = "other-bank-other-project"


def _recovered(settings: Settings) -> dict | None:
    return next((r for r in read_tail(settings.audit_path, 20) if r.get("kind") == "recovered"), None)


def _left_by_dead_servers(settings: Settings) -> tuple[MlflowTracking, str, str]:
    """A run of this project and one of another project, both left RUNNING by a dead server, and
    another project's model whose champion alias mlgate's history here never recorded."""
    dead = MlflowTracking(settings.mlflow_uri, settings.state_dir / "mlartifacts", owner=dead_process_identity())
    orphan = dead.start_run(dead.get_or_create_experiment("demo-bank/credit-default"), {})
    foreign = dead.start_run(dead.get_or_create_experiment("other-bank/other-project"), {})
    for run_id in (orphan, foreign):
        dead.heartbeat.discard(run_id)
    version = dead.register_model_version(OTHER_MODEL, f"file:///nowhere/{foreign}/model", foreign)
    dead.set_alias(OTHER_MODEL, "champion", version)
    return dead, orphan, foreign


async def test_a_resource_read_at_once_succeeds_and_the_dead_servers_run_still_ends_failed(workspace: Path, settings: Settings) -> None:
    dead, orphan, _ = _left_by_dead_servers(settings)
    async with stdio(workspace) as client:
        # at once: the read imports MLflow while the recovery thread does
        result = await client.read_resource("mlgate://models")
        with anyio.fail_after(START_TIMEOUT_S):
            while _recovered(settings) is None:
                await anyio.sleep(0.1)
    assert '"models"' in result.contents[0].text and "server.internal" not in result.contents[0].text
    assert dead.get_run(orphan)["status"] == "FAILED"
    assert "not_repaired" not in _recovered(settings)


async def test_a_starting_server_leaves_another_projects_runs_and_aliases_alone(workspace: Path, settings: Settings) -> None:
    dead, orphan, foreign = _left_by_dead_servers(settings)
    async with stdio(workspace) as client:
        await client.list_tools()
        with anyio.fail_after(START_TIMEOUT_S):
            while _recovered(settings) is None:
                await anyio.sleep(0.1)
    assert dead.get_run(orphan)["status"] == "FAILED"
    assert dead.get_run(foreign)["status"] == "RUNNING"
    assert dead.alias_version(OTHER_MODEL, "champion") == "1"
    assert _recovered(settings)["registry"] == []
