"""What the audit chain vouches for a detached run: which request a worker may execute, once.

The server records, for every `run_experiment(detach=true)` it allowed, a `detached_run` record
with event `accepted` AFTER the enforcement point's allow decision for that call:

    accepted    call_id, run_id, request_sha256 (of the request file's exact bytes), args_hash,
                decision_seq and decision_hash (the allow decision record of the call), principal,
                role, transport
    started     call_id, run_id, pid: a worker claimed the call (at most one ever does)
    refused     call_id, reason: a worker refused to execute (forged, edited or replayed request)
    ended       call_id, run_id, status (FINISHED, FAILED, KILLED), reason
    reconciled  call_id, run_id, status, reason: a server found the worker dead and ended the run

A worker executes a request only when (`vouch`): the chain holds the accepted record of its call
id, the request file hashes to that record's request_sha256, the decision record it names is an
allow decision of run_experiment (not a dry run) by the same principal and role with the same
args_hash, and no worker started the call before. Lines are found by byte markers (canonical
records are compact JSON with sorted keys) and parsed with their hash checked, as server/ledger.py
does; a line that does not hash is ignored.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

Buffer = Union[bytes, memoryview]

from server.audit.records import parse_line

EVENT_KIND = "detached_run"
RAN = ("started", "ended", "reconciled")  # events of a call some worker already ran
CALL_ID = re.compile(r"^[0-9a-f]{32}\Z")
TOOL = "run_experiment"


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


def _lines_with(data: Buffer, marker: bytes, start: int = 0) -> list[dict[str, Any]]:
    """Every well-formed chain record whose line holds `marker`, in chain order, from byte `start`
    (a line boundary) on. Only the matching lines are copied out of `data`."""
    records, last = [], -1
    for match in re.compile(re.escape(marker)).finditer(data, start):
        begin = _line_start(data, start, match.start())
        end = _find(data, b"\n", match.end())
        if begin <= last or end < 0:
            continue
        last = begin
        record, problem = parse_line(bytes(data[begin : end + 1]))
        if problem is None and record is not None:
            records.append(record)
    return records


def _line_start(data: Buffer, start: int, at: int) -> int:
    """Where the line holding byte `at` begins (not before `start`)."""
    step = 4096
    while at > start:
        low = max(start, at - step)
        found = bytes(data[low:at]).rfind(b"\n")
        if found >= 0:
            return low + found + 1
        at, step = low, step * 2
    return start


def _find(data: Buffer, needle: bytes, at: int) -> int:
    match = re.compile(re.escape(needle)).search(data, at)
    return -1 if match is None else match.start()


@contextmanager
def chain_bytes(audit_path: Path) -> Iterator[Buffer]:
    """The chain's complete lines, mapped read-only (a line being written is left out): a chain of
    10^6 records is searched in place, never copied onto the worker's heap."""
    try:
        stream = open(audit_path, "rb")  # noqa: SIM115 - closed below, after the map
    except FileNotFoundError:
        yield b""
        return
    with stream, _mapped(stream) as data:
        whole = memoryview(data)
        lines = whole[: data.rfind(b"\n") + 1]
        try:
            yield lines
        finally:  # a view still exported would keep the map from closing
            lines.release()
            whole.release()


@contextmanager
def _mapped(stream: Any) -> Iterator[Any]:
    size = os.fstat(stream.fileno()).st_size
    if size == 0:  # an empty file cannot be mapped
        yield b""
        return
    with mmap.mmap(stream.fileno(), size, access=mmap.ACCESS_READ) as data:
        yield data


def events_of(chain: Buffer, call_id: str, start: int = 0) -> list[dict[str, Any]]:
    """The detached_run records of one call id, oldest first, from byte `start` on."""
    marker = json.dumps({"call_id": call_id}, separators=(",", ":"))[1:-1].encode()
    return [r for r in _lines_with(chain, marker, start) if r.get("kind") == EVENT_KIND and r.get("call_id") == call_id]


def ran_since(audit_path: Path, call_id: str, start: int) -> bool:
    """Whether a worker started (or ended) the call in the chain past byte `start`."""
    with chain_bytes(audit_path) as chain:
        return any(e.get("event") in RAN for e in events_of(chain, call_id, start))


def _decision(chain: Buffer, accepted: dict[str, Any]) -> dict[str, Any] | None:
    wanted = accepted.get("decision_hash")
    if not isinstance(wanted, str) or not re.fullmatch(r"[0-9a-f]{64}", wanted):
        return None
    found = [r for r in _lines_with(chain, f'"hash":"{wanted}"'.encode()) if r.get("hash") == wanted]
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
    it yet. Raises Refused otherwise."""
    if not CALL_ID.match(call_id):
        raise Refused("a call id is 32 lowercase hex characters")
    with chain_bytes(audit_path) as chain:
        events = events_of(chain, call_id)
        accepted = next((e for e in events if e.get("event") == "accepted"), None)
        if accepted is None:
            raise Refused("the audit chain holds no accepted detached run for this call id")
        if request_sha256(data) != accepted.get("request_sha256"):
            raise Refused("the request file is not the one the server accepted (its SHA-256 differs)")
        if any(e.get("event") in RAN for e in events):
            raise Refused("this call was already started: a detached request runs once")
        _check_decision(_decision(chain, accepted), accepted)
        checked = len(chain)
    try:
        document = json.loads(data)
    except ValueError:
        raise Refused("the request file is not JSON") from None
    return Vouched(_check_document(document, accepted, call_id), accepted, checked)
