"""kill -9 at random points, restart, check: a worker process (tests/reliability/crash_worker.py)
appends audit records or imports datasets in a loop and acknowledges each unit on stdout; it is
SIGKILLed after a random number of acknowledgements, again and again. After every kill the chain
opens (a torn tail quarantined and recorded), verifies, and holds every acknowledged record; no
partial dataset directory is visible and every registered dataset is vouched by the chain.
bench/reliability.py runs 200 kills per mode; here a few keep the suite inside CI's time."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from server.audit import AuditChain, verify
from server.commands.data import store_for
from server.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("MLGATE_CRASH_KILLS", "8"))


def kill_after(workspace: Path, mode: str, tag: str, acks: int) -> list[str]:
    """Run the worker until it acknowledged `acks` units, SIGKILL it; the units it acknowledged."""
    argv = [sys.executable, "-m", "tests.reliability.crash_worker", mode, str(workspace), tag]
    worker = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    acked = []
    try:
        while len(acked) < acks:
            line = worker.stdout.readline().decode()
            if not line:
                raise AssertionError(f"the worker died on its own: {worker.stderr.read().decode()[-2000:]}")
            acked.append(line.split()[1])
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    return acked


def chained_units(workspace: Path) -> set[str]:
    path = load_settings(workspace).audit_path
    return {json.loads(line).get("unit") for line in path.read_bytes().splitlines()}


def reopen_and_verify(workspace: Path) -> None:
    """What a restarted server does first: open the chain (recovering a torn tail), then verify."""
    AuditChain(load_settings(workspace).audit_path).close()
    report = verify(load_settings(workspace).audit_path)
    assert report.ok, report.summary()


@pytest.mark.parametrize("seed", [1])
def test_acknowledged_audit_records_survive_repeated_kill_9(workspace: Path, seed: int) -> None:
    rng, acked = random.Random(seed), []
    for round_ in range(KILLS):
        acked += kill_after(workspace, "audit", f"r{round_}", rng.randint(1, 60))
        reopen_and_verify(workspace)
    assert set(acked) <= chained_units(workspace)


def test_kill_9_during_dataset_imports_leaves_no_partial_or_unvouched_dataset(workspace: Path) -> None:
    rng, acked = random.Random(2), []
    for round_ in range(max(2, KILLS // 3)):
        acked += kill_after(workspace, "import", f"i{round_}", rng.randint(1, 3))
        reopen_and_verify(workspace)
    store = store_for(workspace)
    visible = store.list_hashes()
    assert set(acked) <= set(visible)
    for content_hash in visible:
        assert store.verify(content_hash, registered=False).facts()["problems"] == [], content_hash
    registered = store.registry.entries()[0]
    assert set(acked) <= set(registered) and store.registry.unvouched() == []
