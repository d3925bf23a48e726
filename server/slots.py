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

A lease can name the run it holds the slot for (`Lease.name_run`, once the run exists): a detached
run's call holds its lease while it creates the run and launches the worker, and the worker decides
training.concurrency again, possibly before the call has released that lease. The worker's own
slots (`own_run`) leave out the lease naming its run, which is its own slot, not another run's;
every other caller counts it. While that lease is still held and the worker's owner file already
exists, others count the one run twice, for that moment: a call then is refused or waits although a
slot is about to be free. The over-count is deliberate: a count may briefly be too high, never too
low, so the limit is never exceeded.

The state dir is written by the server only (a sandboxed run cannot reach it). A lease an agent
forged anyway could only take a slot (deny more runs), never grant one: leases are only counted,
only a dead holder's lease is removed, and one naming a run is left out by that run's worker only,
as its call's own lease is (that run was decided already). Entries that are not regular files
(symlinks, FIFOs) are not leases: never followed, opened or counted.
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
from typing import Any

import anyio

from policies.training import BUSY_REMEDIATION, busy_reason
from server.files import locked, write_temp
from server.liveness import ProcessIdentity, owner_is_alive
from server.tracking_owners import PID_NS_TAG, pid_namespace
from tools.errors import PolicyDenied

WAIT_NOTICE_S = 5.0
LEASE_NAME = re.compile(r"[0-9a-f]{32}")
MAX_LEASE_BYTES = 4096


class Lease:
    """The slot `RunSlots.hold` took: its file, and the run it is for once named."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def name_run(self, run_id: str) -> None:
        """Record in the lease the run it holds the slot for (that run's worker does not count it)."""
        # a thread: file writes; not abandoned on cancel, so `hold` removes the lease after the rename
        await anyio.to_thread.run_sync(_write_lease, self.path, run_id)


class RunSlots:
    def __init__(self, limit: int, when_busy: str = "refuse", external: Callable[[], int] | None = None, *, state_dir: Path, own_run: str | None = None) -> None:
        self._limit = limit
        self._when_busy = when_busy
        self._root = state_dir / "slots"
        self._lock = state_dir / "slots.lock"
        self._freed = anyio.Event()
        self.external = external
        self.own_run = own_run  # set in the detached worker of this run: the lease naming it is its own slot

    @property
    def running(self) -> int:
        """Live leases of every process on this state dir (but one naming `own_run`) plus live
        detached workers."""
        return self._live_leases() + (self.external() if self.external is not None else 0)

    @asynccontextmanager
    async def hold(self, on_wait: Callable[[str], Awaitable[None]]) -> AsyncIterator[Lease]:
        """Holds a slot for the body. Raises PolicyDenied when busy and configured to refuse."""
        lease = Lease(await self._acquire(on_wait))
        try:
            yield lease
        finally:
            lease.path.unlink(missing_ok=True)  # synchronous: a cancelled body cannot skip it
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
                raise PolicyDenied(busy_reason(busy, self._limit), BUSY_REMEDIATION, rule_id="training.concurrency")
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
            _write_lease(lease, None)
            return lease, busy

    def _live_leases(self) -> int:
        here, namespace, live = ProcessIdentity.of(os.getpid()), pid_namespace(), 0
        for path, holder, run in _leases(self._root):
            if _holder_alive(holder, here, namespace) is False:
                path.unlink(missing_ok=True)  # its holder died without releasing it (SIGKILL)
            elif self.own_run is None or run != self.own_run:
                live += 1
        return live


def _write_lease(lease: Path, run_id: str | None) -> None:
    """The lease of this process (for `run_id` when given). Written beside, then renamed over: a
    lease is never seen half-written (a crash mid-write leaves only an ignored dot-file), and the
    rename replaces the entry itself, never a file a symlink there points to."""
    holder = {**ProcessIdentity.of(os.getpid()).tags(), PID_NS_TAG: pid_namespace()}
    document = {"holder": holder, **({"run_id": run_id} if run_id is not None else {})}
    os.rename(write_temp(lease, json.dumps(document).encode(), mode=0o600), lease)


def _holder_alive(holder: Mapping[str, str], here: ProcessIdentity, namespace: str) -> bool | None:
    """As for runs (server/tracking_owners.py): a pid of another pid namespace means nothing here."""
    other = holder.get(PID_NS_TAG, "")
    return None if other and namespace and other != namespace else owner_is_alive(holder, here)


def _leases(root: Path) -> Iterator[tuple[Path, Mapping[str, str], str | None]]:
    """Every lease, its holder's tags ({} when unreadable: counted, as it cannot be told) and the
    run it names (None when none or unreadable)."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for entry in entries:
        if LEASE_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            document = _read_lease(Path(entry.path))
            if document is not None:
                yield Path(entry.path), _holder_of(document), _run_of(document)


def _read_lease(path: Path) -> dict[str, Any] | None:
    """A lease's JSON object ({} when unreadable); None when it is gone or is not a regular file."""
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
    return document if isinstance(document, dict) else {}


def _holder_of(document: dict[str, Any]) -> Mapping[str, str]:
    holder = document.get("holder")
    return {str(k): str(v) for k, v in holder.items()} if isinstance(holder, dict) else {}


def _run_of(document: dict[str, Any]) -> str | None:
    run = document.get("run_id")
    return run if isinstance(run, str) else None
