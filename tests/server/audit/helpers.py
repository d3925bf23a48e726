"""Building real chains on disk and tampering with them the way an attacker or a crash would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from server.audit import AuditChain, AuditOptions, canonical, record_hash


class TickingClock:
    """Fixed-width ISO times, one microsecond apart, so forged chains keep byte offsets."""

    def __init__(self) -> None:
        self.ticks = 0

    def iso(self) -> str:
        self.ticks += 1
        return f"2030-01-01T00:00:00.{self.ticks:06d}Z"


def build_chain(path: Path, count: int, tool: str = "t", **options: int) -> Path:
    """A closed (synced and anchored) chain of `count` decision records."""
    chain = AuditChain(path, clock=TickingClock(), options=AuditOptions(**options))
    for n in range(count):
        chain.append({"kind": "decision", "tool": tool, "n": n})
    chain.close()
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path: Path, new_lines: list[bytes]) -> None:
    path.write_bytes(b"".join(new_lines))


def rehashed(line: bytes, **changes: object) -> bytes:
    """The record of `line` with `changes` applied and its own hash recomputed (links untouched)."""
    record = {**json.loads(line), **changes}
    record["hash"] = record_hash(record)
    return canonical(record) + b"\n"


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Polls `condition` until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()
