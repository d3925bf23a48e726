"""server/detached_vouch.py against a real audit chain: a worker may execute a request only when the
chain's accepted record names its exact bytes and an allowed run_experiment decision of the same
principal and arguments, and only once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from server.audit.chain import AuditChain
from server.detached_vouch import Refused, ran_since, request_sha256, vouch

REPO = Path(__file__).resolve().parents[2]
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


# The check in a process of its own, as a worker runs it: the first chain line it parses cuts the
# chain file to 4 KiB (as an operator's or a same-user process's `truncate` would), mid-search.
_CUT_WHILE_READ = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import server.detached_vouch as vouching

    path, request = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()
    parse = vouching.parse_line
    def cutting(raw):
        os.truncate(path, 4096)
        return parse(raw)
    vouching.parse_line = cutting
    try:
        vouching.vouch(path, sys.argv[3], request)
        print("vouched")
    except vouching.Refused as refused:
        print("refused:", refused.reason)
""")


def test_a_chain_cut_while_the_check_reads_it_refuses_the_request_and_the_worker_lives(tmp_path: Path) -> None:
    """A mapped chain cut under its reader killed the worker with SIGBUS (exit -7)."""
    path, request = tmp_path / "audit.jsonl", tmp_path / "request.json"
    _chain(path, {}, _request())
    with path.open("ab") as stream:  # 16 MiB after the call's records: the check reads on past the cut
        stream.write((b'{"kind":"filler","x":"' + b"y" * 1000 + b'"}\n') * 16384)
    request.write_bytes(_request())
    done = subprocess.run([sys.executable, "-c", _CUT_WHILE_READ, str(path), str(request), CALL_ID], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.strip() == "refused: the audit chain was cut (truncated) while this worker read it"


def test_a_chain_cut_between_the_check_and_the_claim_vouches_for_nothing(tmp_path: Path) -> None:
    """What the check read is gone: the claim refuses instead of searching bytes that are not there."""
    path = tmp_path / "audit.jsonl"
    _chain(path, {}, _request())
    vouched = vouch(path, CALL_ID, _request())
    with path.open("r+b") as stream:
        stream.truncate(vouched.checked_bytes - 1)
    with pytest.raises(Refused, match="cut"):
        ran_since(path, CALL_ID, vouched.checked_bytes)
    path.unlink()
    with pytest.raises(Refused, match="gone"):
        ran_since(path, CALL_ID, vouched.checked_bytes)


def test_a_line_longer_than_a_piece_is_stepped_over_and_the_records_past_it_are_found(tmp_path: Path) -> None:
    from server.detached_vouch import PIECE_BYTES

    path = tmp_path / "audit.jsonl"
    _chain(tmp_path / "records.jsonl", {}, _request(), "started")
    overlong = b'{"call_id":"' + CALL_ID.encode() + b'","x":"' + b"y" * PIECE_BYTES + b'"}\n'
    path.write_bytes(overlong + (tmp_path / "records.jsonl").read_bytes())
    with pytest.raises(Refused, match="already started"):
        vouch(path, CALL_ID, _request())
