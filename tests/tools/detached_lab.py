"""Helpers for the detached-run tests: waiting on a run's status in the real MLflow store, the
worker as an agent's shell would start it, the audit records of a call, the processes of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from server.audit import read_tail
from server.settings import Settings
from server.tracking import MlflowTracking
from tests.e2e.transports import REPO_ROOT

WAIT_S = 300.0  # a detached run on two busy cores: worker start, gather, four sandboxed children
POLL_S = 0.2


def tracking_of(settings: Settings) -> MlflowTracking:
    return MlflowTracking(settings.mlflow_uri, settings.state_dir / "mlartifacts")


async def wait_for_run(settings: Settings, run_id: str, until: Any, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """The run once `until(run)` holds (polled in the store, bounded by anyio.fail_after)."""
    tracking = tracking_of(settings)
    with anyio.fail_after(timeout_s):
        while True:
            run = await anyio.to_thread.run_sync(tracking.get_run, run_id)
            if until(run):
                return run
            await anyio.sleep(POLL_S)


def ended(run: dict[str, Any]) -> bool:
    return run["status"] != "RUNNING"


def training_started(run: dict[str, Any]) -> bool:
    """The worker reported a stage's start: a sandboxed child is about to run or runs."""
    return "training on" in (run["tags"].get("mlgate.progress_message") or "") or ended(run)


def start_worker(settings: Settings, call_id: str) -> subprocess.CompletedProcess:
    """`python -m server.detached` as an agent with a shell would run it."""
    argv = [sys.executable, "-m", "server.detached", "--state-dir", str(settings.state_dir), call_id]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def detached_records(settings: Settings, call_id: str | None = None) -> list[dict[str, Any]]:
    records = [r for r in read_tail(settings.audit_path, 1000) if r.get("kind") == "detached_run"]
    return [r for r in records if call_id is None or r.get("call_id") == call_id]


def owner_pid(settings: Settings, call_id: str) -> int:
    owner = json.loads((settings.state_dir / "detached" / f"{call_id}.owner.json").read_text())
    return int(owner["tags"]["mlgate.server.pid"])


def processes_naming(text: str) -> list[int]:
    """Pids whose command line holds `text` (a run id: the sandbox's bwrap argv names its run dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
