"""Storage faults met for real, shared by tests/reliability/test_faults.py and bench/reliability.py:
a full or read-only state dir (tests/reliability/fault_worker.py inside `unshare --mount`) and a
tracking database another process holds locked (`BEGIN EXCLUSIVE`)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.reliability.checks import TRACEBACK_MARKERS

ROOT = Path(__file__).resolve().parents[2]
RAW_TEXT = ("No space left", "Read-only file system", "Errno", "database is locked", "OperationalError", "sqlite3.")


def namespaces_refused() -> str | None:
    """Why mount namespaces cannot be used here (None when they can)."""
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "unshare or mount is not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/mnt"], capture_output=True, check=False)
    return None if probe.returncode == 0 else f"mount namespaces are not permitted: {probe.stderr.decode(errors='replace').strip()[:200]}"


def meet_fault(mode: str, workspace: Path, datasets: list[str]) -> dict[str, Any]:
    """Run the fault worker for `mode` (disk_full, read_only) in a private mount namespace."""
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-m", "tests.reliability.fault_worker", mode, str(workspace), *datasets]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        raise AssertionError(f"the fault worker failed: {done.stderr.decode(errors='replace')[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def answer_problems(answer: dict[str, Any]) -> list[str]:
    """What is wrong with one answer given under a fault: an error without rule_id, reason and
    remediation, or raw system text (errno, sqlite, traceback) reaching the client."""
    body = answer.get("text", "") + json.dumps(answer.get("payload", {}))
    found = [f"{answer['tool']}: raw text {m!r}" for m in (*RAW_TEXT, *TRACEBACK_MARKERS) if m in body]
    payload = answer.get("payload") or {}
    if answer.get("is_error") and not all(isinstance(payload.get(k), str) and payload[k] for k in ("rule_id", "reason", "remediation")):
        found.append(f"{answer['tool']}: error without rule_id/reason/remediation")
    return found


def disk_full_problems(report: dict[str, Any]) -> list[str]:
    under = [a for a in report["answers"] if a["tool"] not in ("list_runs(before)", "close")]
    found = [p for a in under for p in answer_problems(a)]
    if not any(a.get("is_error") and (a.get("payload") or {}).get("rule_id") == "audit.unavailable" for a in under):
        found.append("no call was refused for want of space: the fault never bit")
    return found + _after(report)


def read_only_problems(report: dict[str, Any]) -> list[str]:
    (serve,) = report["answers"]
    found = [] if serve["returncode"] != 0 else ["mlgate serve started on a read-only state dir"]
    found += [f"serve: raw text {m!r}" for m in ("Traceback", 'File "') if m in serve["stderr"]]
    if "what to do:" not in serve["stderr"] or "audit" not in serve["stderr"]:
        found.append(f"serve gave no clear message: {serve['stderr'][-300:]!r}")
    return found + _after(report)


def _after(report: dict[str, Any]) -> list[str]:
    found = [] if report["verified"] else [f"chain does not verify: {report['summary']}"]
    return found + [f"partial file left: {p}" for p in report["leftovers"]]


@contextmanager
def locked_tracking_db(path: Path) -> Iterator[None]:
    """Another process's view: an exclusive sqlite transaction held on the MLflow database."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()
