"""server/detached_vouch.py against a real audit chain: a worker may execute a request only when the
chain's accepted record names its exact bytes and an allowed run_experiment decision of the same
principal and arguments, and only once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.audit.chain import AuditChain
from server.detached_vouch import Refused, ran_since, request_sha256, vouch

CALL_ID, RUN_ID = "c" * 32, "a" * 32
WHO = {"principal": "codex", "role": "agent"}


def _request(**changes: object) -> bytes:
    document = {"call_id": CALL_ID, "run_id": RUN_ID, "principal": {"name": "codex", "role": "agent"}, "arguments": {"detach": True}, **changes}
    return json.dumps(document, sort_keys=True).encode()


def _chain(path: Path, decision: dict, data: bytes, *events: str) -> None:
    chain = AuditChain(path)
    try:
        decided = chain.append({**WHO, "tool": "run_experiment", "args_hash": "1" * 64, "kind": "decision", "decision": "allow", "rule_ids": [], "denied_by": [], "dry_run": False, **decision})
        chain.append({**WHO, "kind": "detached_run", "event": "accepted", "call_id": CALL_ID, "run_id": RUN_ID, "request_sha256": request_sha256(data),
                      "args_hash": "1" * 64, "decision_seq": decided["seq"], "decision_hash": decided["hash"], "transport": "stdio"})  # fmt: skip
        for event in events:
            chain.append({"kind": "detached_run", "event": event, "call_id": CALL_ID, "run_id": RUN_ID})
    finally:
        chain.close()


def test_the_accepted_request_is_vouched(tmp_path: Path) -> None:
    _chain(tmp_path / "audit.jsonl", {}, _request())
    assert vouch(tmp_path / "audit.jsonl", CALL_ID, _request()).document["run_id"] == RUN_ID


@pytest.mark.parametrize(
    ("decision", "events", "data", "why"),
    [
        ({}, (), _request(principal={"name": "risk-officer", "role": "human"}), "SHA-256 differs"),
        ({}, ("started",), _request(), "already started"),
        ({"decision": "deny"}, (), _request(), "not an allowed run_experiment call"),
        ({"dry_run": True}, (), _request(), "not an allowed run_experiment call"),
        ({"tool": "promote"}, (), _request(), "not an allowed run_experiment call"),
        ({"args_hash": "2" * 64}, (), _request(), "other arguments"),
        ({"principal": "claude"}, (), _request(), "another principal"),
    ],
    ids=["edited_request", "replayed", "denied_call", "dry_run", "other_tool", "other_arguments", "other_principal"],
)
def test_a_request_the_chain_does_not_vouch_for_is_refused(tmp_path: Path, decision: dict, events: tuple, data: bytes, why: str) -> None:
    _chain(tmp_path / "audit.jsonl", decision, _request(), *events)
    with pytest.raises(Refused, match=why):
        vouch(tmp_path / "audit.jsonl", CALL_ID, data)


def test_an_unknown_call_id_is_refused(tmp_path: Path) -> None:
    _chain(tmp_path / "audit.jsonl", {}, _request())
    with pytest.raises(Refused, match="no accepted detached run"):
        vouch(tmp_path / "audit.jsonl", "d" * 32, _request())


def test_a_missing_or_empty_chain_vouches_for_nothing(tmp_path: Path) -> None:
    for prepare in (lambda p: None, lambda p: p.write_bytes(b"")):
        prepare(tmp_path / "audit.jsonl")
        with pytest.raises(Refused, match="no accepted detached run"):
            vouch(tmp_path / "audit.jsonl", CALL_ID, _request())


def test_a_record_being_written_is_not_read(tmp_path: Path) -> None:
    """A `started` line without its newline yet is left out; once complete it counts."""
    path = tmp_path / "audit.jsonl"
    _chain(path, {}, _request(), "started")
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    assert not ran_since(path, CALL_ID, 0)
    path.write_bytes(whole)
    assert ran_since(path, CALL_ID, 0)


def test_the_check_reports_the_bytes_it_read_and_a_claim_reads_only_past_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _chain(path, {}, _request())
    vouched = vouch(path, CALL_ID, _request())
    assert vouched.checked_bytes == path.stat().st_size
    assert not ran_since(path, CALL_ID, vouched.checked_bytes)
    chain = AuditChain(path)  # another worker claims the call after this one's check
    try:
        chain.append({"kind": "detached_run", "event": "started", "call_id": CALL_ID, "run_id": RUN_ID})
    finally:
        chain.close()
    assert ran_since(path, CALL_ID, vouched.checked_bytes)
    assert not ran_since(path, CALL_ID, path.stat().st_size)  # past the claim: nothing more


def test_a_long_chain_is_searched_without_being_read_into_memory(tmp_path: Path) -> None:
    """64 MiB of other lines in the chain: the check's peak allocation stays far below them."""
    import tracemalloc

    path = tmp_path / "audit.jsonl"
    _chain(path, {}, _request())
    with path.open("ab") as stream:
        stream.write((b'{"kind":"filler","x":"' + b"y" * 1000 + b'"}\n') * 65536)
    tracemalloc.start()
    try:
        vouch(path, CALL_ID, _request())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 64 * 2**20 and peak < 4 * 2**20, peak
