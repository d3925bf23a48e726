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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def request_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _lines_with(data: bytes, marker: bytes) -> list[dict[str, Any]]:
    """Every well-formed chain record whose line holds `marker`, in chain order."""
    records, last = [], -1
    for match in re.finditer(re.escape(marker), data):
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.end())
        if start <= last or end < 0:
            continue
        last = start
        record, problem = parse_line(data[start : end + 1])
        if problem is None and record is not None:
            records.append(record)
    return records


def read_chain(audit_path: Path) -> bytes:
    """The chain's complete lines (a line being written is left out)."""
    try:
        data = Path(audit_path).read_bytes()
    except FileNotFoundError:
        return b""
    return data[: data.rfind(b"\n") + 1]


def events_of(chain: bytes, call_id: str) -> list[dict[str, Any]]:
    """The detached_run records of one call id, oldest first."""
    marker = json.dumps({"call_id": call_id}, separators=(",", ":"))[1:-1].encode()
    return [r for r in _lines_with(chain, marker) if r.get("kind") == EVENT_KIND and r.get("call_id") == call_id]


def _decision(chain: bytes, accepted: dict[str, Any]) -> dict[str, Any] | None:
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
    chain = read_chain(audit_path)
    events = events_of(chain, call_id)
    accepted = next((e for e in events if e.get("event") == "accepted"), None)
    if accepted is None:
        raise Refused("the audit chain holds no accepted detached run for this call id")
    if request_sha256(data) != accepted.get("request_sha256"):
        raise Refused("the request file is not the one the server accepted (its SHA-256 differs)")
    if any(e.get("event") in RAN for e in events):
        raise Refused("this call was already started: a detached request runs once")
    _check_decision(_decision(chain, accepted), accepted)
    try:
        document = json.loads(data)
    except ValueError:
        raise Refused("the request file is not JSON") from None
    return Vouched(_check_document(document, accepted, call_id), accepted)
