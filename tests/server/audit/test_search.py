"""server/audit/search.py: matching records come only from an intact chain, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.audit import AuditChain
from server.audit.search import AuditQuery, field_text, parse_time, search
from tests.server.audit.helpers import build_chain, lines, rehashed, rewrite


class DailyClock:
    """One record a day from 2030-01-01, noon UTC."""

    def __init__(self) -> None:
        self.day = 0

    def iso(self) -> str:
        self.day += 1
        return f"2030-01-{self.day:02d}T12:00:00.000000Z"


RECORDS = [
    {"kind": "decision", "tool": "run_experiment", "principal": "agent-a", "decision": "allow"},
    {"kind": "outcome", "tool": "run_experiment", "principal": "agent-a", "run_id": "r1", "status": "completed"},
    {"kind": "decision", "tool": "promote", "principal": "agent-b", "decision": "deny"},
    {"kind": "read", "resource": "mlgate://audit/tail", "principal": "agent-b", "decision": "deny"},
    {"kind": "run_metrics", "run_id": "r1", "names": ["roc_auc"]},
    {"kind": "approval_decided", "principal": "carol", "decision": "approve", "attempt": 2},
]


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    audit = AuditChain(path, clock=DailyClock())
    for record in RECORDS:
        audit.append(record)
    audit.close()
    return path


def _seqs(path: Path, query: AuditQuery) -> list[int]:
    found: list[dict] = []
    report = search(path, query, found.append)
    assert report.chain.ok and report.matched == len(found)
    return [r["seq"] for r in found]


def test_an_empty_query_matches_every_record_oldest_first(chain: Path) -> None:
    assert _seqs(chain, AuditQuery()) == [0, 1, 2, 3, 4, 5]


def test_records_about_one_run_are_those_with_its_run_id(chain: Path) -> None:
    assert _seqs(chain, AuditQuery(fields=(("run_id", "r1"),))) == [1, 4]


def test_all_conditions_must_hold(chain: Path) -> None:
    query = AuditQuery(kinds=frozenset({"decision"}), fields=(("principal", "agent-b"),))
    assert _seqs(chain, query) == [2]


def test_several_kinds_match_any_of_them(chain: Path) -> None:
    assert _seqs(chain, AuditQuery(kinds=frozenset({"read", "run_metrics"}))) == [3, 4]


def test_denied_finds_refused_calls_and_reads_but_not_approvals_granted(chain: Path) -> None:
    assert _seqs(chain, AuditQuery(denied=True)) == [2, 3]


def test_a_number_field_matches_as_written(chain: Path) -> None:
    assert _seqs(chain, AuditQuery(fields=(("attempt", "2"),))) == [5]
    assert _seqs(chain, AuditQuery(fields=(("seq", "3"),))) == [3]


def test_a_list_field_never_matches_its_text(chain: Path) -> None:
    assert _seqs(chain, AuditQuery(fields=(("names", "['roc_auc']"),))) == []
    assert field_text(["roc_auc"]) is None and field_text(True) == "true"


def test_a_time_window_includes_its_start_and_excludes_its_end(chain: Path) -> None:
    query = AuditQuery(since=parse_time("2030-01-02T12:00:00Z"), until=parse_time("2030-01-04T12:00:00Z"))
    assert _seqs(chain, query) == [1, 2]


def test_a_day_without_a_zone_is_read_as_utc() -> None:
    assert parse_time("2030-01-02") == datetime(2030, 1, 2, tzinfo=UTC)
    assert parse_time("2030-01-02T01:00:00+02:00") == datetime(2030, 1, 1, 23, tzinfo=UTC)
    assert parse_time("yesterday") is None


def test_a_record_without_a_time_is_outside_every_window() -> None:
    assert not AuditQuery(since=parse_time("2000-01-01")).matches({"kind": "decision"})
    assert AuditQuery().matches({"kind": "decision"})


def test_an_edited_chain_yields_no_records_at_all(chain: Path) -> None:
    found: list[dict] = []
    rewrite(chain, [*lines(chain)[:4], rehashed(lines(chain)[4], run_id="r2"), *lines(chain)[5:]])
    report = search(chain, AuditQuery(), found.append)
    assert found == [] and report.matched == 0
    assert not report.chain.ok and report.chain.problem.kind == "broken_link"


def test_a_chain_rewritten_whole_yields_nothing_though_every_link_holds(chain: Path) -> None:
    """The forgery shows only at the anchor, after the records it would have shown."""
    forged = build_chain(chain.parent / "forged" / "audit.jsonl", 12, tool="run_experiment")
    chain.write_bytes(forged.read_bytes())
    found: list[dict] = []
    report = search(chain, AuditQuery(), found.append)
    assert found == [] and report.chain.problem.kind == "anchor_mismatch"


def test_records_appended_after_the_first_walk_are_left_for_the_next_search(chain: Path) -> None:
    found: list[dict] = []

    def append_while_searching(record: dict) -> None:
        found.append(record)
        if record["seq"] == 0:  # the second walk has begun: the first one verified seqs 0..5
            audit = AuditChain(chain, clock=DailyClock())
            audit.append({"kind": "decision", "tool": "late"})
            audit.close()

    report = search(chain, AuditQuery(), append_while_searching)
    assert [r["seq"] for r in found] == [0, 1, 2, 3, 4, 5] and report.chain.head_seq == 5
