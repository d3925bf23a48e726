"""ChainLedger on real audit chains: what the chain vouches for, read incrementally."""

from __future__ import annotations

import json
from pathlib import Path

from server.audit import AuditChain
from server.ledger import ChainLedger, credential_of, token_body

HASH = "a" * 64


def chain(tmp_path: Path, *records: dict) -> Path:
    path = tmp_path / "audit.jsonl"
    audit = AuditChain(path)
    for record in records:
        audit.append(record)
    audit.close()
    return path


def created(name: str, role: str, stored: str = HASH) -> dict:
    return {"kind": "token_created", "token": token_body(name, role, stored), "principal": "root-op", "role": "operator"}


def test_records_appended_later_are_read_on_the_next_lookup(tmp_path: Path) -> None:
    path = chain(tmp_path, {"kind": "protected_in_force", "values": {"split.test_size": "0.3"}})
    ledger = ChainLedger(path)
    assert ledger.in_force() == {"split.test_size": "0.3"}
    chain(tmp_path, {"kind": "protected_in_force", "values": {"split.test_size": "0.2"}}, {"kind": "outcome", "tool": "x"})
    assert ledger.in_force() == {"split.test_size": "0.2"}


def test_a_vouching_line_whose_hash_does_not_match_is_ignored(tmp_path: Path) -> None:
    path = chain(tmp_path, {"kind": "decision", "tool": "x"})
    record = {"kind": "protected_in_force", "values": {"split.test_size": "0.9"}, "seq": 1, "time": "t", "prev": "0" * 64, "hash": "f" * 64}
    with path.open("a") as handle:
        handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    assert ChainLedger(path).in_force() is None


def test_a_replaced_chain_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = chain(tmp_path, {"kind": "protected_in_force", "values": {"a": "1"}})
    ledger = ChainLedger(path)
    assert ledger.in_force() == {"a": "1"}
    path.unlink()
    (tmp_path / "audit.head").unlink()
    chain(tmp_path, {"kind": "decision", "tool": "x"})
    assert ledger.in_force() is None


def test_a_credential_counts_only_between_its_creation_and_its_revocation(tmp_path: Path) -> None:
    path = chain(
        tmp_path,
        {"kind": "decision", "tool": "x"},
        created("alice", "human"),
        {"kind": "decision", "tool": "y"},
        {"kind": "token_revoked", "token": token_body("alice", None, HASH), "principal": "root-op", "role": "operator"},
    )
    ledger, credential = ChainLedger(path), credential_of("alice", HASH)
    assert not ledger.credential_valid_at(credential, "alice", "human", 0)
    assert ledger.credential_valid_at(credential, "alice", "human", 2)
    assert not ledger.credential_valid_at(credential, "alice", "human", 4)
    assert not ledger.credential_valid_at(credential, "mallory", "human", 2)
    assert not ledger.credential_valid_at(credential, "alice", "operator", 2)
    assert ledger.live_token("alice", "human", HASH) is None


def test_agent_tokens_never_vouch_a_decision(tmp_path: Path) -> None:
    ledger = ChainLedger(chain(tmp_path, created("codex", "agent"), {"kind": "decision", "tool": "x"}))
    assert ledger.live_token("codex", "agent", HASH) is not None
    assert not ledger.credential_valid_at(credential_of("codex", HASH), "codex", "agent", 1)
