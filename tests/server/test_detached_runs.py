"""server/detached_runs.py without training: owner files of dead, live and other-host workers
against a real sqlite MLflow store and audit chain (slots, reconcile, cancel)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from server.liveness import ProcessIdentity
from server.ports import Ports
from server.settings import Settings
from tools.errors import IntegrityError
from tests.server.test_tracking import dead_process_identity

CALL_ID = "c" * 32


def _owned_run(ports: Ports, tags: dict[str, Any], call_id: str = CALL_ID, accepted: bool = True, experiment: str = "demo-bank/credit-default") -> str:
    """A RUNNING run and the owner file a launch leaves for it, with the `accepted` record launch
    chains (unless `accepted` is False: a file written by hand)."""
    run_id = ports.tracking.start_run(ports.tracking.get_or_create_experiment(experiment), {})
    ports.tracking.set_tags(run_id, {k: str(v) for k, v in tags.items()})
    _owner_file(ports, call_id, run_id, tags, accepted)
    return run_id


def _owner_file(ports: Ports, call_id: str, run_id: str, tags: dict[str, Any], accepted: bool = True) -> None:
    if accepted:
        ports.audit.append({"kind": "detached_run", "event": "accepted", "call_id": call_id, "run_id": run_id})
    ports.detached.root.mkdir(parents=True, exist_ok=True)
    ports.detached.owner_path(call_id).write_text(json.dumps({"call_id": call_id, "run_id": run_id, "tags": tags}))


def test_a_dead_workers_run_is_reconciled_failed_and_its_slot_released(ports: Ports) -> None:
    run_id = _owned_run(ports, dead_process_identity().tags())
    assert ports.slots.running == 0  # a dead worker holds no slot, even before reconciliation
    assert ports.detached.reconcile() == [run_id]
    run = ports.tracking.get_run(run_id)
    assert run["status"] == "FAILED" and "detached worker" in run["tags"]["mlgate.end_reason"]
    assert not ports.detached.owner_path(CALL_ID).exists()
    assert [r["event"] for r in ports.audit.tail(5) if r.get("kind") == "detached_run"] == ["accepted", "reconciled"]


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


def test_an_owner_file_the_chain_never_accepted_ends_no_run(ports: Ports) -> None:
    """Written by hand (the same OS user's shell) for another project's RUNNING run: the chain never
    accepted that call, so reconcile leaves the run and the file alone and records nothing."""
    run_id = _owned_run(ports, dead_process_identity().tags(), accepted=False, experiment="other-client/other-project")
    assert ports.detached.reconcile() == []
    assert ports.tracking.get_run(run_id)["status"] == "RUNNING" and ports.detached.owner_path(CALL_ID).exists()
    assert [r for r in ports.audit.tail(5) if r.get("event") == "reconciled"] == []


def test_an_owner_file_naming_a_run_the_store_lacks_does_not_stop_the_others(ports: Ports) -> None:
    _owner_file(ports, "a" * 32, "0" * 32, dead_process_identity().tags())
    run_id = _owned_run(ports, dead_process_identity().tags())
    assert ports.detached.reconcile() == [run_id]
    assert ports.tracking.get_run(run_id)["status"] == "FAILED" and not ports.detached.owner_path("a" * 32).exists()


def test_an_owner_file_with_values_launch_never_writes_is_ignored(ports: Ports) -> None:
    run_id = _owned_run(ports, {**dead_process_identity().tags(), "mlgate.server.pid": 12345})
    assert ports.slots.running == 0 and ports.detached.reconcile() == []
    assert ports.detached.cancel(CALL_ID, grace_s=1.0) == "not_running"
    assert ports.tracking.get_run(run_id)["status"] == "RUNNING"


@pytest.mark.parametrize("started_pid", [None, 1], ids=["before-the-worker-started", "the-worker-chained-another-pid"])
def test_cancel_never_signals_a_process_the_chain_does_not_name_as_the_worker(ports: Ports, started_pid: int | None) -> None:
    """The agent's own run, its owner file rewritten to name an unrelated live process."""
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        run_id = _owned_run(ports, ProcessIdentity.of(victim.pid).tags())
        if started_pid is not None:
            ports.audit.append({"kind": "detached_run", "event": "started", "call_id": CALL_ID, "run_id": run_id, "pid": started_pid})
        with pytest.raises(IntegrityError) as refused:
            ports.detached.cancel(CALL_ID, grace_s=1.0)
        assert refused.value.rule_id == "detached.owner_vouched" and "nothing was signalled" in refused.value.reason
        assert victim.poll() is None and ports.tracking.get_run(run_id)["status"] == "RUNNING"
    finally:
        victim.kill()
        victim.wait()
