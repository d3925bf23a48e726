"""server/detached_runs.py without training: owner files of dead, live and other-host workers
against a real sqlite MLflow store and audit chain (slots, reconcile, cancel)."""

from __future__ import annotations

import json
import os

import pytest

from server.liveness import ProcessIdentity
from server.ports import Ports
from server.settings import Settings
from tests.server.test_tracking import dead_process_identity

CALL_ID = "c" * 32


def _owned_run(ports: Ports, tags: dict[str, str]) -> str:
    """A RUNNING run and the owner file a launch leaves for it."""
    run_id = ports.tracking.start_run(ports.tracking.get_or_create_experiment("demo-bank/credit-default"), {})
    ports.tracking.set_tags(run_id, tags)
    ports.detached.root.mkdir(parents=True, exist_ok=True)
    ports.detached.owner_path(CALL_ID).write_text(json.dumps({"call_id": CALL_ID, "run_id": run_id, "tags": tags}))
    return run_id


def test_a_dead_workers_run_is_reconciled_failed_and_its_slot_released(ports: Ports) -> None:
    run_id = _owned_run(ports, dead_process_identity().tags())
    assert ports.slots.running == 0  # a dead worker holds no slot, even before reconciliation
    assert ports.detached.reconcile() == [run_id]
    run = ports.tracking.get_run(run_id)
    assert run["status"] == "FAILED" and "detached worker" in run["tags"]["mlgate.end_reason"]
    assert not ports.detached.owner_path(CALL_ID).exists()
    assert [r["event"] for r in ports.audit.tail(5) if r.get("kind") == "detached_run"] == ["reconciled"]


def test_a_live_worker_holds_a_slot_and_is_left_running(ports: Ports) -> None:
    run_id = _owned_run(ports, ProcessIdentity.of(os.getppid()).tags())  # a live process that is not this one
    assert ports.slots.running == 1
    assert ports.detached.reconcile() == []
    assert ports.tracking.get_run(run_id)["status"] == "RUNNING"


def test_a_worker_on_another_host_is_neither_reconciled_nor_cancelled_here(ports: Ports) -> None:
    run_id = _owned_run(ports, {**dead_process_identity().tags(), "mlgate.server.host": "another-host"})
    assert ports.slots.running == 1  # cannot be told: counted, to stay under the limit
    assert ports.detached.reconcile() == []
    assert ports.detached.worker_elsewhere(CALL_ID)
    assert ports.detached.cancel(CALL_ID, grace_s=1.0) == "elsewhere"
    assert ports.tracking.get_run(run_id)["status"] == "RUNNING" and ports.detached.owner_path(CALL_ID).exists()
