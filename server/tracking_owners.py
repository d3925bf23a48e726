"""Who may end a RUNNING run that is not theirs: the rule shared by every server (replica) that
writes to one tracking store.

A run carries its owner's identity (server/liveness.py: host, boot id, pid, process start ticks),
the owner's pid namespace (`mlgate.server.pid_ns`: two containers may share a host name and a
kernel but not their pids) and a heartbeat (`mlgate.server.heartbeat`, epoch milliseconds) that the
owning process refreshes while the run is RUNNING (`Heartbeat`).

    owner on this host, same pid namespace   alive iff its pid exists with the recorded start
                                             ticks and boot id (the heartbeat is not needed)
    owner elsewhere (other host or namespace) alive iff its heartbeat is younger than
                                             `tracking.stale_after_seconds`; a run with no
                                             heartbeat is never touched (an operator ends it)
    no owner tags                            never touched

So a replica never fails a run that another live replica is training, on this host or another,
and a host that died leaves runs that the next server anywhere fails once their heartbeat is stale.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from server.liveness import OWNER_TAG_PREFIX, ProcessIdentity, owner_is_alive

HEARTBEAT_TAG = f"{OWNER_TAG_PREFIX}heartbeat"
PID_NS_TAG = f"{OWNER_TAG_PREFIX}pid_ns"


def pid_namespace() -> str:
    """This process's pid namespace ("pid:[4026531836]"), "" where /proc does not say."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _heartbeat_alive(tags: Mapping[str, str], now_ms: int, stale_after_ms: int) -> bool | None:
    beat = tags.get(HEARTBEAT_TAG, "")
    if not beat.isdigit():
        return None
    return now_ms - int(beat) <= stale_after_ms


def run_owner_alive(tags: Mapping[str, str], here: ProcessIdentity, *, now_ms: int, stale_after_ms: int, pid_ns: str | None = None) -> bool | None:
    """True / False when the owner of a RUNNING run is alive / gone; None when it cannot be told
    (then the run is left alone). See the module docstring for the rule."""
    if not tags.get(f"{OWNER_TAG_PREFIX}pid"):
        return None
    here_ns = pid_namespace() if pid_ns is None else pid_ns
    owner_ns = tags.get(PID_NS_TAG, "")
    same_namespace = not owner_ns or not here_ns or owner_ns == here_ns
    local = owner_is_alive(tags, here) if same_namespace else None
    return local if local is not None else _heartbeat_alive(tags, now_ms, stale_after_ms)


class Heartbeat:
    """Refreshes the heartbeat tag of the runs this process owns, every `interval_s`, in a daemon
    thread started with the first run. `beat(run_id, now_ms)` writes one tag; failures of the
    tracking store are skipped (the next beat retries)."""

    def __init__(self, beat: Callable[[str], None], interval_s: float) -> None:
        self._beat = beat
        self._interval_s = interval_s
        self._runs: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, run_id: str) -> None:
        with self._lock:
            self._runs.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="mlgate-heartbeat", daemon=True)
                self._thread.start()

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._runs.discard(run_id)

    @property
    def running(self) -> bool:
        """Whether the heartbeat thread is running (it ends once no run is left to beat)."""
        with self._lock:
            return self._thread is not None

    def owned(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def _loop(self) -> None:
        pause = threading.Event()
        while not pause.wait(self._interval_s):
            runs = self._owned_or_stop()
            if runs is None:
                return
            for run_id in runs:
                try:
                    self._beat(run_id)
                except Exception:  # noqa: BLE001, S112 - a store hiccup must not stop the heartbeat
                    continue

    def _owned_or_stop(self) -> list[str] | None:
        """The runs to beat; None when none is left: the thread ends (the next `add` starts another)."""
        with self._lock:
            if not self._runs:
                self._thread = None
                return None
            return sorted(self._runs)
