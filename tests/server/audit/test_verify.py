"""verify() on real chain files: every tamper kind is found at the first bad record."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.audit import AuditChain, read_anchor, verify
from tests.server.audit.helpers import build_chain, lines, rehashed, rewrite


@pytest.fixture
def chain_path(tmp_path: Path) -> Path:
    return build_chain(tmp_path / "state" / "audit.jsonl", 5)


def test_intact_chain_verifies_with_count_head_and_anchor(chain_path: Path) -> None:
    report = verify(chain_path)
    anchor = read_anchor(chain_path.with_name("audit.head"))
    assert report.ok and report.problem is None
    assert (report.count, report.head_seq, report.anchor_seq) == (5, 4, 4)
    assert report.head_hash == anchor.hash
    assert report.summary().startswith("audit chain intact: 5 records, head seq 4")


def test_missing_chain_without_anchor_is_an_empty_intact_chain(tmp_path: Path) -> None:
    report = verify(tmp_path / "audit.jsonl")
    assert report.ok and report.count == 0 and report.summary() == "audit chain intact: no records yet"


def _edit_field(path: Path) -> None:
    content = lines(path)
    content[2] = content[2].replace(b'"n":2', b'"n":7')
    rewrite(path, content)


def _edit_and_rehash(path: Path) -> None:
    content = lines(path)
    content[2] = rehashed(content[2], tool="forged")
    rewrite(path, content)


def _delete_middle(path: Path) -> None:
    content = lines(path)
    del content[2]
    rewrite(path, content)


def _swap(path: Path) -> None:
    content = lines(path)
    content[1], content[2] = content[2], content[1]
    rewrite(path, content)


def _duplicate(path: Path) -> None:
    content = lines(path)
    content.insert(2, content[1])
    rewrite(path, content)


def _truncate_records(path: Path) -> None:
    rewrite(path, lines(path)[:3])


def _truncate_mid_line(path: Path) -> None:
    content = lines(path)
    rewrite(path, content[:4] + [content[4][:40]])


def _torn_after_anchor(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b'{"kind":"decision","n":5,"pr')


def _break_json(path: Path) -> None:
    content = lines(path)
    content[1] = b"{not json\n"
    rewrite(path, content)


def _whitespace_only(path: Path) -> None:
    content = lines(path)
    content[3] = content[3].replace(b'"kind":', b'"kind": ')
    rewrite(path, content)


def _forge_whole_chain(path: Path) -> None:
    forged = build_chain(path.parent / "forged" / "audit.jsonl", 5, tool="u")
    path.write_bytes(forged.read_bytes())


def _delete_anchor(path: Path) -> None:
    path.with_name("audit.head").unlink()


def _garble_anchor(path: Path) -> None:
    path.with_name("audit.head").write_text("{broken")


TAMPERS = [
    pytest.param(_edit_field, "edited", 3, 2, id="edit-a-field"),
    pytest.param(_break_json, "edited", 2, None, id="line-not-json"),
    pytest.param(_whitespace_only, "edited", 4, 3, id="whitespace-edit"),
    pytest.param(_edit_and_rehash, "broken_link", 4, 3, id="edit-and-rehash"),
    pytest.param(_delete_middle, "deleted", 3, 3, id="delete-middle-line"),
    pytest.param(_swap, "reordered", 2, 2, id="swap-two-lines"),
    pytest.param(_duplicate, "reordered", 3, 1, id="duplicate-a-line"),
    pytest.param(_truncate_records, "truncated", 4, 3, id="truncate-last-records"),
    pytest.param(_truncate_mid_line, "truncated", 5, 4, id="truncate-mid-line"),
    pytest.param(_torn_after_anchor, "torn_tail", 6, 5, id="torn-last-line"),
    pytest.param(_forge_whole_chain, "anchor_mismatch", 5, 4, id="rewrite-whole-chain"),
    pytest.param(_delete_anchor, "anchor_missing", 0, None, id="delete-anchor"),
    pytest.param(_garble_anchor, "anchor_unreadable", 0, None, id="garble-anchor"),
]


@pytest.mark.parametrize(("tamper", "kind", "line", "seq"), TAMPERS)
def test_each_tamper_kind_is_reported_at_the_first_bad_record(chain_path: Path, tamper, kind: str, line: int, seq: int | None) -> None:
    tamper(chain_path)
    report = verify(chain_path)
    assert not report.ok
    assert (report.problem.kind, report.problem.line, report.problem.seq) == (kind, line, seq)
    assert report.summary().startswith(f"audit chain BROKEN: {kind} at line {line}")


def test_records_verified_before_the_problem_are_counted(chain_path: Path) -> None:
    _delete_middle(chain_path)
    report = verify(chain_path)
    assert report.count == 2 and report.head_seq == 1


def test_deleted_chain_file_with_an_anchor_is_truncation(chain_path: Path) -> None:
    chain_path.unlink()
    report = verify(chain_path)
    assert not report.ok and (report.problem.kind, report.problem.line, report.problem.seq) == ("truncated", 1, 0)


def test_recovered_torn_tail_verifies_and_is_named_in_the_summary(chain_path: Path) -> None:
    _torn_after_anchor(chain_path)
    AuditChain(chain_path).close()
    report = verify(chain_path)
    assert report.ok and report.recovered == (5,) and report.count == 6
    assert "1 recovered torn tail(s) at seq 5" in report.summary()
