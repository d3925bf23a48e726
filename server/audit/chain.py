"""The audit chain writer (design: server/audit/__init__.py)."""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server.files import private_dir, write_atomic
from server.audit.signing import chain_signer
from server.audit.records import (
    CHAIN_FIELDS,
    GENESIS,
    MAX_RECORD_BYTES,
    RECOVERED_KIND,
    AuditOptions,
    Head,
    canonical,
    check_json,
    complete_end,
    integrity_error,
    line_ending_at,
    parse_line,
    read_anchor,
    read_tail,
    record_hash,
    sibling,
    write_anchor,
)
from server.clock import SystemClock
from tools.errors import IntegrityError
from tools.redact import redact_value

_LOCK_FIRST_PAUSE_S = 0.0001
_LOCK_MAX_PAUSE_S = 0.005


class AuditChain:
    """The audit chain of one workspace. `append` is safe from many threads and many processes.

    Raises IntegrityError on open when the chain is damaged (see the module docstring).
    """

    def __init__(self, path: Path | str, clock: Any = None, options: AuditOptions | None = None, signer: Any = None) -> None:
        self.path = Path(path)
        self.anchor_path = sibling(self.path, "head")
        self.checkpoints_path = sibling(self.path, "checkpoints")
        # signs anchored heads when a signing key is configured (server/audit/signing.py); a chain
        # opened by path alone signs with the key its `mlgate audit keygen` noted beside it
        self._signer = signer if signer is not None else chain_signer(self.path)
        self._last_signed: tuple[int, str] | None = None
        self.options = options or AuditOptions()
        self._clock = clock or SystemClock()
        self._mutex = threading.RLock()
        self._pending = 0
        self._timer: threading.Timer | None = None
        self._closed = False
        private_dir(self.path.parent)
        self._lock_fd, self._fd = _open_files(self.path)
        # Descriptors of a chain nobody closed are released when it is collected, exactly once.
        self._release = weakref.finalize(self, _close_all, self._fd, self._lock_fd)
        self._release.atexit = False
        try:
            with self._exclusive():
                self._head = self._resume()
        except BaseException:
            self._close_fds()
            raise
        atexit.register(_close_at_exit, weakref.ref(self))

    @property
    def head(self) -> Head:
        return self._head

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Chains `record` and returns it with seq, time, prev and hash.

        Raises TypeError/ValueError for a record that is not plain JSON or sets a chain field, and
        IntegrityError when the file changed behind the chain or the lock cannot be had.
        """
        body = _validated(record)
        with self._exclusive():
            self._catch_up()
            written = self._write_record(body)
            self._after_write()
        return written

    def append_unless(self, record: Mapping[str, Any], taken: Callable[[], bool]) -> dict[str, Any] | None:
        """Chains `record` unless `taken()`, asked under the chain's lock once the records other
        processes appended are adopted, says one of them claimed it first: a claim two processes
        race for (a detached call's `started`) is won once. Returns None when taken. Raises as `append`."""
        body = _validated(record)
        with self._exclusive():
            self._catch_up()
            if taken():
                return None
            written = self._write_record(body)
            self._after_write()
        return written

    def append_prepared(self, prepare: Callable[[], object], record: Mapping[str, Any]) -> dict[str, Any]:
        """Runs `prepare()`, chains `record` and anchors its head, all under the chain's lock: no
        other writer appends or signs in between. `mlgate audit keygen` installs a signing key and
        announces it this way, so every head a key signs lies within its term (crosscheck's
        key_out_of_term). Raises as `append`, and what `prepare` raises (nothing chained then)."""
        body = _validated(record)
        with self._exclusive():
            self._catch_up()
            prepare()
            written = self._write_record(body)
            self._sync_locked()
        return written

    def sync(self) -> None:
        """fsync the chain and anchor its head. Raises IntegrityError if the file changed behind it."""
        with self._exclusive():
            self._sync_locked()

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            try:
                self.sync()
            finally:
                self._closed = True
                self._close_fds()

    def tail(self, n: int | None = None) -> list[dict[str, Any]]:
        """The last `n` records (default `tail_default`, at most `tail_max`)."""
        return read_tail(self.path, min(n or self.options.tail_default, self.options.tail_max))

    # locking -------------------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._mutex:
            if self._closed:
                raise IntegrityError(f"the audit chain {self.path.name} is closed", "the server is shutting down; retry once it is back", rule_id="audit.closed")
            self._flock()
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _flock(self) -> None:
        # Non-blocking tries with a growing pause: a stuck holder is refused instead of hanging the server.
        waited, pause = 0.0, _LOCK_FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if waited * 1000 >= self.options.lock_timeout_ms:
                    break
            time.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, _LOCK_MAX_PAUSE_S)
        raise IntegrityError(
            f"another process has held the audit lock of {self.path.name} for over {self.options.lock_timeout_ms} ms",
            "find the mlgate process that is stuck writing the audit chain and stop it",
            rule_id="audit.locked",
        )

    def _close_fds(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._release()

    # resuming ------------------------------------------------------------------------------------

    def _resume(self) -> Head:
        size = os.fstat(self._fd).st_size
        anchor = read_anchor(self.anchor_path)
        if anchor is None:
            if size:
                raise integrity_error("anchor_missing", f"{self.path.name} holds records but its anchor {self.anchor_path.name} is missing")
            write_anchor(self.anchor_path, GENESIS)
            return GENESIS
        end = self._complete_end(size, anchor)
        if anchor.offset > end:
            raise integrity_error("truncated", f"the anchor holds seq {anchor.seq} at byte {anchor.offset}; {self.path.name} has {end} complete bytes")
        self._check_anchored(anchor)
        self._head = self._walk_from(anchor, end)
        if end < size:
            self._recover_torn_tail(end, size)
        return self._head

    def _complete_end(self, size: int, anchor: Head) -> int:
        try:
            return complete_end(self._fd, size)
        except IntegrityError:
            detail = (f"{self.path.name} ends in more than {MAX_RECORD_BYTES} bytes without a line end, which no crash leaves "
                      f"(each record is one write of at most that); the anchored records end at byte {anchor.offset}")
            raise integrity_error("torn_tail", detail) from None

    def _check_anchored(self, anchor: Head) -> None:
        if anchor.seq < 0:
            return
        record, problem = parse_line(line_ending_at(self._fd, anchor.offset))
        if problem or record is None or (record["seq"], record["hash"]) != (anchor.seq, anchor.hash):
            raise integrity_error("anchor_mismatch", f"the record at the anchored offset is not the anchored head seq {anchor.seq}")

    def _walk_from(self, anchor: Head, end: int) -> Head:
        """The head after checking every record past the anchor (a batch, unless a crash came
        before its anchor): appending after a damaged one would anchor, and sign, a head beyond it.
        Raises IntegrityError (`audit.diverged`) at the first record that does not extend the chain."""
        self._head = anchor
        while self._head.offset < end:
            self._adopt(self._next_piece(end))
        return self._head

    def _recover_torn_tail(self, end: int, size: int) -> None:
        torn = os.pread(self._fd, size - end, end)
        digest = hashlib.sha256(torn).hexdigest()
        side = sibling(self.path, f"torn-{self._head.seq + 1}-{digest[:12]}")
        write_atomic(side, torn, mode=0o600)
        os.ftruncate(self._fd, end)
        os.fsync(self._fd)
        note = {"kind": RECOVERED_KIND, "quarantine": side.name, "torn_bytes": len(torn), "torn_sha256": digest}
        self._write_record(note)
        self._sync_locked()

    # writing -------------------------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Adopts records another process appended since our last write; refuses anything else."""
        try:
            replaced = os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            replaced = True
        if replaced:
            raise integrity_error("replaced", f"{self.path.name} was deleted or replaced while the chain was open")
        size = os.fstat(self._fd).st_size
        if size < self._head.offset:
            raise integrity_error("truncated", f"{self.path.name} shrank below seq {self._head.seq} while the chain was open")
        while self._head.offset < size:  # in pieces: records others appended may be many
            self._adopt(self._next_piece(size))

    def _next_piece(self, size: int) -> bytes:
        """Complete lines from the head on, at most 8 records' worth; the rest if it ends the file."""
        data = os.pread(self._fd, min(8 * MAX_RECORD_BYTES, size - self._head.offset), self._head.offset)
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) == 8 * MAX_RECORD_BYTES:
            raise integrity_error("overlong_line", f"a line after seq {self._head.seq} is longer than any record")
        return data[:cut] if cut and self._head.offset + len(data) < size else data

    def _adopt(self, data: bytes) -> None:
        if not data.endswith(b"\n"):
            raise integrity_error("torn_tail", f"{self.path.name} ends in a partial record written by another process")
        offset = self._head.offset
        for line in data.splitlines(keepends=True):
            record, problem = parse_line(line)
            if problem or record is None or record["seq"] != self._head.seq + 1 or record["prev"] != self._head.hash:
                raise integrity_error("diverged", f"a record after seq {self._head.seq} does not extend the chain")
            offset += len(line)
            self._head = Head(record["seq"], record["hash"], offset)

    def _write_record(self, body: Mapping[str, Any]) -> dict[str, Any]:
        record = {**body, "seq": self._head.seq + 1, "time": self._clock.iso(), "prev": self._head.hash}
        record["hash"] = record_hash(record)
        line = canonical(record) + b"\n"
        if len(line) > MAX_RECORD_BYTES:  # readers refuse longer lines unread
            raise ValueError(f"an audit record of {len(line)} bytes is longer than {MAX_RECORD_BYTES}; record hashes, not contents")
        written = os.write(self._fd, line)
        if written != len(line):
            raise integrity_error("write_failed", f"only {written} of {len(line)} bytes of seq {record['seq']} were written")
        self._head = Head(record["seq"], record["hash"], self._head.offset + len(line))
        return record

    def _after_write(self) -> None:
        self._pending += 1
        if self._pending >= self.options.fsync_every:
            self._sync_locked()
        elif self._timer is None:
            self._timer = threading.Timer(self.options.fsync_interval_ms / 1000, self._timed_sync)
            self._timer.daemon = True
            self._timer.start()

    def _sync_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        os.fsync(self._fd)
        self._catch_up()
        signed = self._sign_head()
        write_anchor(self.anchor_path, self._head, signed)
        self._pending = 0

    def _sign_head(self) -> dict[str, Any] | None:
        """The signed head for the anchor; each new one is also kept in the checkpoints file."""
        if self._signer is None:
            return None
        signed = self._signer.sign(self._head, self._clock.iso())
        if signed is not None and (signed["seq"], signed["hash"]) != self._last_signed:
            _append_line(self.checkpoints_path, canonical(signed) + b"\n")
            self._last_signed = (signed["seq"], signed["hash"])
        return signed

    def _timed_sync(self) -> None:
        # A damaged file is reported by the next append; the timer has no caller to tell.
        try:
            self.sync()
        except (IntegrityError, OSError):
            pass


def _validated(record: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise TypeError(f"an audit record is a mapping, not {type(record).__name__}")
    check_json(record)
    clash = sorted(set(record) & set(CHAIN_FIELDS))
    if clash:
        raise ValueError(f"audit record sets chain fields {clash}; the chain assigns them")
    # a URI with credentials (a tracking URI, a git remote) never reaches the chain; one C-speed
    # serialisation decides whether the record holds a URI at all
    body = dict(record)
    return redact_value(body) if "://" in json.dumps(body) else body


def _append_line(path: Path, line: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _open_files(path: Path) -> tuple[int, int]:
    """(lock fd, chain fd). Raises IntegrityError (audit.unavailable) where the state dir cannot be
    written (read-only, full, not ours): the server must not start without a chain to record in."""
    try:
        return _open_for_append(path)
    except OSError as exc:
        raise IntegrityError(
            f"the audit chain {path.name} cannot be opened for writing: {exc.strerror or type(exc).__name__}",
            "make the state directory writable (and give its filesystem free space), then start mlgate again",
            rule_id="audit.unavailable",
        ) from None


def _open_for_append(path: Path) -> tuple[int, int]:
    lock_fd = os.open(sibling(path, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        return lock_fd, os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except BaseException:
        os.close(lock_fd)
        raise


def _close_all(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def _close_at_exit(ref: weakref.ref) -> None:
    chain = ref()
    if chain is not None:
        try:
            chain.close()
        except (IntegrityError, OSError):
            pass
