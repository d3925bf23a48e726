"""Which server process owns a RUNNING run, and is it still alive?

A run records its owner as tags (host, boot id, pid, process start time). A later server on the
same host can then tell a live owner from a dead one, even when the pid has been reused: the boot id
changes on reboot and the start time changes with a new process. Linux /proc is used where present;
elsewhere only the pid is checked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

OWNER_TAG_PREFIX = "mlgate.server."
OWNER_TAGS = ("host", "boot_id", "pid", "started")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def process_start_ticks(pid: int) -> str | None:
    """Start time of a process in clock ticks since boot (/proc/<pid>/stat field 22): with the boot
    id it tells a live owner from a recycled pid. None where /proc is not available."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rsplit(")", 1)[1].split()[19] if stat else None


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    boot_id: str
    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        boot_id = _read("/proc/sys/kernel/random/boot_id") or ""
        return cls(socket.gethostname(), boot_id, pid, process_start_ticks(pid) or "")

    def tags(self) -> dict[str, str]:
        return {f"{OWNER_TAG_PREFIX}{name}": str(getattr(self, name)) for name in OWNER_TAGS}


def _is_zombie(pid: int) -> bool:
    """An exited process not yet reaped by its parent still has a pid: it owns nothing any more."""
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] == "Z"


def _pid_exists(pid: int) -> bool:
    if _is_zombie(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_alive(tags: Mapping[str, str], here: ProcessIdentity) -> bool | None:
    """True / False for a run owned by a server on this host; None when it cannot be told (another
    host, or a run that carries no owner tags)."""
    owner = {name: tags.get(f"{OWNER_TAG_PREFIX}{name}") for name in OWNER_TAGS}
    if owner["pid"] is None or owner["host"] != here.host:
        return None
    if owner["boot_id"] and here.boot_id and owner["boot_id"] != here.boot_id:
        return False
    if not owner["pid"].isdigit() or int(owner["pid"]) <= 0:
        return None  # os.kill(0 or -n) would probe a process group, not the owner
    pid = int(owner["pid"])
    if not _pid_exists(pid):
        return False
    current_start = process_start_ticks(pid)
    return not (owner["started"] and current_start and owner["started"] != current_start)
