"""Storage faults met for real (tests/reliability/faults.py): a state dir on a full tmpfs, a state
dir mounted read-only, a tracking database another process holds locked. Each is answered with a
clear refusal (rule_id, reason, remediation; no errno, sqlite text or traceback) and leaves nothing
half-written: the chain verifies once the fault is lifted and no temporary file is left behind.
Tests run as root, so chmod would not stop a write: the faults are mounts in a private namespace."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.audit import verify
from server.commands.data import import_files
from server.demo_data import credit_frame
from server.ports import Ports
from server.settings import Settings
from tests.reliability.faults import answer_problems, disk_full_problems, locked_tracking_db, meet_fault, namespaces_refused, read_only_problems
from tests.reliability.fault_worker import answer

REFUSED = namespaces_refused()
needs_namespaces = pytest.mark.skipif(REFUSED is not None, reason=REFUSED or "")


@pytest.fixture
def dataset(workspace: Path, tmp_path: Path) -> str:
    source = tmp_path / "credit.csv"
    credit_frame(rows=60, seed=3).to_csv(source, index=False)
    return import_files(workspace, [source]).added.content_hash


@needs_namespaces
def test_a_full_state_disk_refuses_calls_with_a_clear_error_and_half_writes_nothing(workspace: Path, dataset: str) -> None:
    report = meet_fault("disk_full", workspace, [dataset])
    assert disk_full_problems(report) == [], report


@needs_namespaces
def test_a_read_only_state_dir_stops_the_server_at_start_with_a_clear_message(workspace: Path) -> None:
    report = meet_fault("read_only", workspace, [])
    assert read_only_problems(report) == [], report
    assert "audit.jsonl cannot be opened for writing" in report["answers"][0]["stderr"]


@pytest.mark.anyio
async def test_a_locked_tracking_database_is_a_busy_refusal_not_sqlite_text(settings: Settings, ports: Ports) -> None:
    async with Client(build_server(settings, ports)) as client:
        assert not (await client.call_tool("list_runs", {})).is_error  # creates the database
        with locked_tracking_db(settings.state_dir / "mlflow.db"), anyio.fail_after(120):
            locked = answer(await client.call_tool("list_runs", {}))
        after = await client.call_tool("list_runs", {})
    assert locked["is_error"] and locked["payload"]["rule_id"] == "tracking.busy", locked
    assert answer_problems({"tool": "list_runs", **locked}) == []
    assert not after.is_error, after.structured_content
    ports.audit.sync()
    assert verify(settings.audit_path).ok
    assert any("tracking.busy" in r.get("rule_ids", ()) for r in ports.audit.tail(6)), ports.audit.tail(6)
