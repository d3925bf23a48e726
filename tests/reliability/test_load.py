"""Concurrent agents on one workspace (tests/reliability/load.py): stdio subprocesses and
streamable-HTTP sessions at once, mixed reads, proposals and a real run. bench/reliability.py runs
8 clients x 500 calls; here MLGATE_LOAD_CLIENTS x MLGATE_LOAD_CALLS (4 x 15, one run) keep CI fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.settings import Settings
from tests.reliability.load import latency_table, load_problems, prepare, run_load

pytestmark = pytest.mark.anyio
CLIENTS = int(os.environ.get("MLGATE_LOAD_CLIENTS", "4"))
CALLS = int(os.environ.get("MLGATE_LOAD_CALLS", "15"))
RUNS = int(os.environ.get("MLGATE_LOAD_RUNS", "1"))


async def test_concurrent_stdio_and_http_clients_lose_no_record_and_see_no_lock_error(workspace: Path, settings: Settings, tmp_path: Path) -> None:
    dataset = prepare(workspace, tmp_path)
    calls = await run_load(workspace, settings, CLIENTS, CALLS, RUNS, dataset)
    assert load_problems(calls, settings, CLIENTS * CALLS + min(RUNS, CLIENTS)) == []
    assert sum(c.ok for c in calls if c.tool == "run_experiment") == min(RUNS, CLIENTS)
    assert set(latency_table(calls)) >= {"list_runs", "load_dataset", "propose_config_change"}
