"""What the audit chain vouches for a detached run: which request a worker may execute, once.

The server records, for every `run_experiment(detach=true)` it allowed, a `detached_run` record
with event `accepted` AFTER the enforcement point's allow decision for that call:

    accepted    call_id, run_id, request_sha256 (of the request file's exact bytes), args_hash,
                decision_seq and decision_hash (the allow decision record of the call), principal,
                role, transport
    started     call_id, run_id, pid: a worker claimed the call (at most one ever does)
    refused     call_id, reason: a worker refused to execute (forged, edited or replayed request)
    ended       call_id, run_id, status (FINISHED, FAILED, KILLED), reason
    reconciled  call_id, run_id, status, reason, leftover_processes: a server found the worker dead and
                ended the run (killing what its sandbox left, server/sandbox_leftovers.py)

A worker executes a request only when (`vouch`): the chain holds the accepted record of its call
id, the request file hashes to that record's request_sha256, the decision record it names is an
allow decision of run_experiment (not a dry run) by the same principal and role with the same
args_hash, and no worker started the call before. Lines are found by byte markers (canonical
records are compact JSON with sorted keys) and parsed with their hash checked, as server/ledger.py
does; a line that does not hash is ignored. The chain is read in bounded pieces of complete lines
(server/audit/tail.py line_pieces), never mapped: a chain cut while a worker reads it (or between
its check and its claim) vouches for nothing, and the worker refuses instead of dying of SIGBUS.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.audit.records import MAX_RECORD_BYTES, parse_line
from server.audit.tail import line_pieces

EVENT_KIND = "detached_run"
RAN = ("started", "ended", "reconciled")  # events of a call some worker already ran
CALL_ID = re.compile(r"^[0-9a-f]{32}\Z")
TOOL = "run_experiment"
# The chain is searched a piece at a time (bounded reads, never a map: a chain cut while mapped
# would kill the worker with SIGBUS). Twice a record's largest size (MAX_RECORD_BYTES), so every
# record fits a piece, and small enough that the check holds little more than one piece.
PIECE_BYTES = 2 * MAX_RECORD_BYTES
CUT = "the audit chain was cut (truncated) while this worker read it"


class Refused(Exception):
    """The chain does not vouch for the request; `reason` says why (no data of the request)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Vouched:
    """A request the chain vouches for: the parsed request document and its accepted record."""

    document: dict[str, Any]
    accepted: dict[str, Any]
    # The chain's bytes this check read (no worker had started the call in them): claiming the
    # call then reads only what was appended since, under the chain's lock.
    checked_bytes: int = 0


def request_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lines_with(piece: memoryview, marker: bytes) -> list[dict[str, Any]]:
    """Every well-formed chain record whose line holds `marker`, in order, in a piece of complete
    lines. The piece's buffer is searched in place (its find is several times faster than a regex
    over a view); only the matching lines are copied out."""
    data, size = piece.obj, len(piece)  # a piece is a view of its buffer's start (line_pieces)
    records, at = [], data.find(marker, 0, size)
    while at >= 0:
        begin, end = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at, size)  # a piece ends with a newline
        record, problem = parse_line(bytes(piece[begin : end + 1]))
        if problem is None and record is not None:
            records.append(record)
        at = data.find(marker, end + 1, size)  # from the next line on: a line counts once
    return records


@contextmanager
def _opened(audit_path: Path, missing: str) -> Iterator[int]:
    """The chain file, open for reading. Raises Refused(`missing`) when there is none."""
    try:
        fd = os.open(audit_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Refused(missing) from None
    try:
        yield fd
    finally:
        os.close(fd)


def _search(fd: int, marker: bytes, start: int, end: int) -> tuple[list[dict[str, Any]], int]:
    """The records whose line holds `marker` between byte `start` (a line's start) and `end`, and
    the offset just past the last complete line read (a torn last line is left for later). Raises
    Refused when the file was cut while read: what it held is no longer what was searched."""
    records, offset = [], start
    for offset, piece in line_pieces(fd, start, end, PIECE_BYTES):  # noqa: B007 - offset: how far
        records += _lines_with(piece, marker)
    if os.fstat(fd).st_size < end:
        raise Refused(CUT)
    return records, offset


def _call_events(fd: int, call_id: str, start: int, end: int) -> tuple[list[dict[str, Any]], int]:
    marker = json.dumps({"call_id": call_id}, separators=(",", ":"))[1:-1].encode()
    found, offset = _search(fd, marker, start, end)
    return [r for r in found if r.get("kind") == EVENT_KIND and r.get("call_id") == call_id], offset


def events_of(audit_path: Path, call_id: str, start: int = 0) -> list[dict[str, Any]]:
    """The detached_run records of one call id, oldest first, from byte `start` (a line's start)
    on. Raises Refused when the chain is missing or cut while read."""
    with _opened(audit_path, "there is no audit chain") as fd:
        return _call_events(fd, call_id, start, os.fstat(fd).st_size)[0]


def ran_since(audit_path: Path, call_id: str, start: int) -> bool:
    """Whether a worker started (or ended) the call in the chain past byte `start` (the bytes a
    check read). Raises Refused when the chain is now shorter than that, missing or cut while read:
    what the check read is gone, so it vouches for nothing."""
    with _opened(audit_path, "the audit chain is gone since this worker checked the request") as fd:
        end = os.fstat(fd).st_size
        if end < start:
            raise Refused("the audit chain was cut (truncated) since this worker checked the request")
        return any(e.get("event") in RAN for e in _call_events(fd, call_id, start, end)[0])


def _decision(fd: int, accepted: dict[str, Any], end: int) -> dict[str, Any] | None:
    wanted = accepted.get("decision_hash")
    if not isinstance(wanted, str) or not re.fullmatch(r"[0-9a-f]{64}", wanted):
        return None
    found = [r for r in _search(fd, f'"hash":"{wanted}"'.encode(), 0, end)[0] if r.get("hash") == wanted]
    return found[0] if found else None


def _check_decision(decision: dict[str, Any] | None, accepted: dict[str, Any]) -> None:
    if decision is None or decision.get("seq") != accepted.get("decision_seq"):
        raise Refused("the audit chain holds no decision record for this call")
    expected = {"kind": "decision", "decision": "allow", "tool": TOOL, "dry_run": False}
    if any(decision.get(k) != v for k, v in expected.items()):
        raise Refused("the decision record of this call is not an allowed run_experiment call")
    if any(decision.get(k) != accepted.get(k) for k in ("args_hash", "principal", "role")):
        raise Refused("the decision record of this call was made for other arguments or another principal")


def _check_document(document: Any, accepted: dict[str, Any], call_id: str) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("call_id") != call_id or document.get("run_id") != accepted.get("run_id"):
        raise Refused("the request names another call or run than the audit chain accepted")
    principal = document.get("principal") or {}
    if (principal.get("name"), principal.get("role")) != (accepted.get("principal"), accepted.get("role")):
        raise Refused("the request names another principal than the audit chain accepted")
    return document


def vouch(audit_path: Path, call_id: str, data: bytes) -> Vouched:
    """The request document `data` of `call_id` when the chain vouches for it and no worker started
    it yet. Raises Refused otherwise (a chain cut while read included)."""
    if not CALL_ID.match(call_id):
        raise Refused("a call id is 32 lowercase hex characters")
    with _opened(audit_path, "the audit chain holds no accepted detached run for this call id") as fd:
        events, checked = _call_events(fd, call_id, 0, os.fstat(fd).st_size)
        accepted = next((e for e in events if e.get("event") == "accepted"), None)
        if accepted is None:
            raise Refused("the audit chain holds no accepted detached run for this call id")
        if request_sha256(data) != accepted.get("request_sha256"):
            raise Refused("the request file is not the one the server accepted (its SHA-256 differs)")
        if any(e.get("event") in RAN for e in events):
            raise Refused("this call was already started: a detached request runs once")
        _check_decision(_decision(fd, accepted, checked), accepted)
    try:
        document = json.loads(data)
    except ValueError:
        raise Refused("the request file is not JSON") from None
    return Vouched(_check_document(document, accepted, call_id), accepted, checked)
