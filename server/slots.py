"""Run slots: at most N training runs at once (configs/policy.yaml training.max_concurrent_runs)
across every server process (replica) of one state dir on one host.

A run this server trains holds a lease: a file `<state_dir>/slots/<random id>` naming the holder
process (server/liveness.py identity: host, boot id, pid, start ticks, and its pid namespace). A
lease is counted and created under an exclusive flock on `<state_dir>/slots.lock`, so two
processes never both take the last slot; it is removed when the run's body ends (also on errors
and cancellation). A lease whose holder is dead (a replica killed with SIGKILL) does not count and
is removed when found; one whose holder cannot be told (another host or pid namespace, unreadable
content) counts, until an operator removes its file. Detached runs whose worker is alive count too (`external`,
server/detached_runs.py live_count). A busy server refuses or makes the caller wait, by config; a
waiting caller re-checks when a slot of this process is freed and at least every WAIT_NOTICE_S
(a slot freed by another replica).

The state dir is written by the server only (a sandboxed run cannot reach it). A lease an agent
forged anyway could only take a slot (deny more runs), never grant one: leases are only counted,
and only a dead holder's lease is removed. Entries that are not regular files (symlinks, FIFOs)
are not leases: never followed, opened or counted.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from server.files import locked, write_temp
from server.liveness import ProcessIdentity, owner_is_alive
from server.tracking_owners import PID_NS_TAG, pid_namespace
from tools.errors import PolicyDenied

WAIT_NOTICE_S = 5.0
LEASE_NAME = re.compile(r"[0-9a-f]{32}")
MAX_LEASE_BYTES = 4096


class RunSlots:
    def __init__(self, limit: int, when_busy: str = "refuse", external: Callable[[], int] | None = None, *, state_dir: Path) -> None:
        self._limit = limit
        self._when_busy = when_busy
        self._root = state_dir / "slots"
        self._lock = state_dir / "slots.lock"
        self._freed = anyio.Event()
        self.external = external

    @property
    def running(self) -> int:
        """Live leases of every process on this state dir plus live detached workers."""
        return self._live_leases() + (self.external() if self.external is not None else 0)

    @asynccontextmanager
    async def hold(self, on_wait: Callable[[str], Awaitable[None]]) -> AsyncIterator[None]:
        """Holds a slot for the body. Raises PolicyDenied when busy and configured to refuse."""
        lease = await self._acquire(on_wait)
        try:
            yield
        finally:
            lease.unlink(missing_ok=True)  # synchronous: a cancelled body cannot skip it
            self._freed.set()
            self._freed = anyio.Event()

    async def _acquire(self, on_wait: Callable[[str], Awaitable[None]]) -> Path:
        while True:
            # a thread: the flock may wait for another process; not abandoned on cancel, so a lease
            # it took is returned and released by `hold`
            lease, busy = await anyio.to_thread.run_sync(self._take)
            if lease is not None:
                return lease
            if self._when_busy != "wait":
                raise PolicyDenied(f"{busy} runs are in progress; the limit is {self._limit}", "wait for a run to finish and call run_experiment again", rule_id="training.concurrency")
            await on_wait(f"waiting for a run slot ({busy}/{self._limit} busy)")
            with anyio.move_on_after(WAIT_NOTICE_S):
                await self._freed.wait()

    def _take(self) -> tuple[Path | None, int]:
        """A new lease when a slot is free (None otherwise), and the slots busy before it."""
        with locked(self._lock):
            busy = self.running
            if busy >= self._limit:
                return None, busy
            self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
            lease = self._root / secrets.token_hex(16)
            holder = {**ProcessIdentity.of(os.getpid()).tags(), PID_NS_TAG: pid_namespace()}
            # written beside, then renamed: a lease is never seen half-written (a crash mid-write
            # leaves only an ignored dot-file)
            os.rename(write_temp(lease, json.dumps({"holder": holder}).encode(), mode=0o600), lease)
            return lease, busy

    def _live_leases(self) -> int:
        here, namespace, live = ProcessIdentity.of(os.getpid()), pid_namespace(), 0
        for path, holder in _leases(self._root):
            if _holder_alive(holder, here, namespace) is False:
                path.unlink(missing_ok=True)  # its holder died without releasing it (SIGKILL)
            else:
                live += 1
        return live


def _holder_alive(holder: Mapping[str, str], here: ProcessIdentity, namespace: str) -> bool | None:
    """As for runs (server/tracking_owners.py): a pid of another pid namespace means nothing here."""
    other = holder.get(PID_NS_TAG, "")
    return None if other and namespace and other != namespace else owner_is_alive(holder, here)


def _leases(root: Path) -> Iterator[tuple[Path, Mapping[str, str]]]:
    """Every lease and its holder's tags ({} when unreadable: counted, as it cannot be told)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for entry in entries:
        if LEASE_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            holder = _read_holder(Path(entry.path))
            if holder is not None:
                yield Path(entry.path), holder


def _read_holder(path: Path) -> Mapping[str, str] | None:
    """The holder tags of a lease; None when it is gone or is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:  # released meanwhile, or swapped for a symlink: no lease; else unreadable
        return None if exc.errno in (errno.ENOENT, errno.ELOOP) else {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        document = json.loads(os.read(fd, MAX_LEASE_BYTES))
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    holder = document.get("holder") if isinstance(document, dict) else None
    return {str(k): str(v) for k, v in holder.items()} if isinstance(holder, dict) else {}
