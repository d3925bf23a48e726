"""A line longer than any record (server/audit/records.py MAX_RECORD_BYTES) is refused after reading
at most that much of it: a sparse junk line of gigabytes costs neither memory nor a full read."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from server.audit import AuditChain, AuditOptions, read_tail, verify
from server.audit.crosscheck import crosscheck
from server.audit.overrides import chained_records
from server.audit.records import MAX_RECORD_BYTES, bounded_lines
from tests.server.audit.helpers import TickingClock, build_chain
from tools.errors import IntegrityError

JUNK_BYTES = 3 * 2**30


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return build_chain(tmp_path / "audit.jsonl", 3)


def _append_sparse_junk(path: Path, size: int = JUNK_BYTES, newline: bool = False) -> None:
    """`size` zero bytes that take no disk, as a same-user process could append them."""
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size + size)
        if newline:
            handle.seek(0, os.SEEK_END)
            handle.write(b"\n")


@contextmanager
def _bounded(peak_bytes: int, read_bytes: int) -> Iterator[None]:
    """Fails unless the block allocates at most `peak_bytes` and reads at most `read_bytes`."""
    before = _bytes_read()
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < peak_bytes, f"peak allocation {peak}"
    assert _bytes_read() - before < read_bytes, f"read {_bytes_read() - before} bytes"


def _bytes_read() -> int:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


def test_verify_reports_a_junk_line_of_gigabytes_as_edited_without_reading_it(path: Path) -> None:
    _append_sparse_junk(path)
    with _bounded(peak_bytes=4 * MAX_RECORD_BYTES, read_bytes=4 * MAX_RECORD_BYTES):
        report = verify(path)
    assert not report.ok and report.count == 3
    assert (report.problem.kind, report.problem.line) == ("edited", 4)
    assert "longer than any record" in report.problem.detail


def test_verify_reports_an_overlong_complete_line_between_records(tmp_path: Path) -> None:
    path = build_chain(tmp_path / "audit.jsonl", 2)
    with path.open("ab") as handle:
        handle.write(b"x" * (MAX_RECORD_BYTES + 10) + b"\n")
    report = verify(path)
    assert (report.problem.kind, report.problem.line) == ("edited", 3)


def test_a_record_of_the_largest_size_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    chain = AuditChain(path, clock=TickingClock())
    chain.append({"kind": "decision", "pad": ""})
    fixed = path.stat().st_size  # the same record with an empty pad: seq, time and hashes keep their widths
    chain.append({"kind": "decision", "pad": "p" * (MAX_RECORD_BYTES - fixed)})
    chain.close()
    assert path.stat().st_size - fixed == MAX_RECORD_BYTES and verify(path).ok


def test_a_record_longer_than_any_reader_accepts_is_refused_and_nothing_is_written(path: Path) -> None:
    chain = AuditChain(path, clock=TickingClock())
    before = path.read_bytes()
    with pytest.raises(ValueError, match="longer than"):
        chain.append({"kind": "decision", "pad": "p" * MAX_RECORD_BYTES})
    chain.close()
    assert path.read_bytes() == before and verify(path).ok


def test_opening_refuses_a_torn_tail_longer_than_any_record_and_leaves_the_file_alone(path: Path) -> None:
    _append_sparse_junk(path)
    size, names = path.stat().st_size, sorted(p.name for p in path.parent.iterdir())
    with _bounded(peak_bytes=4 * MAX_RECORD_BYTES, read_bytes=4 * MAX_RECORD_BYTES), pytest.raises(IntegrityError) as refused:
        AuditChain(path)
    assert refused.value.rule_id == "audit.torn_tail" and "no crash leaves" in refused.value.reason
    assert path.stat().st_size == size and sorted(p.name for p in path.parent.iterdir()) == names


def test_a_torn_tail_a_crash_can_leave_is_still_quarantined(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b'{"kind":"decision","pad":"' + b"p" * (MAX_RECORD_BYTES - 100))
    chain = AuditChain(path, clock=TickingClock())
    chain.close()
    assert [p.name for p in path.parent.glob("audit.torn-*")] and verify(path).ok


def _open_then(path: Path, damage: Callable[[Path], None]) -> AuditChain:
    chain = AuditChain(path, clock=TickingClock(), options=AuditOptions(fsync_every=10_000))
    damage(path)
    return chain


def test_appending_after_junk_another_process_wrote_is_refused_without_reading_it(path: Path) -> None:
    chain = _open_then(path, lambda p: _append_sparse_junk(p, newline=True))
    with _bounded(peak_bytes=32 * MAX_RECORD_BYTES, read_bytes=16 * MAX_RECORD_BYTES), pytest.raises(IntegrityError) as refused:
        chain.append({"kind": "decision"})
    assert refused.value.rule_id == "audit.overlong_line"


def _append_padded_records(path: Path, count: int = 6000) -> None:
    other = AuditChain(path, clock=TickingClock(), options=AuditOptions(fsync_every=10_000))
    for n in range(count):
        other.append({"kind": "decision", "n": n, "pad": "p" * 4096})
    other.close()


def test_records_another_process_appended_are_adopted_in_pieces(path: Path) -> None:
    chain = _open_then(path, _append_padded_records)
    with _bounded(peak_bytes=24 * MAX_RECORD_BYTES, read_bytes=40 * MAX_RECORD_BYTES):
        written = chain.append({"kind": "decision", "tool": "after"})
    chain.close()
    assert path.stat().st_size > 24 * MAX_RECORD_BYTES
    assert written["seq"] == 6003 and verify(path).ok


def test_tail_refuses_a_last_line_longer_than_any_record(path: Path) -> None:
    _append_sparse_junk(path, newline=True)
    with pytest.raises(IntegrityError) as refused:
        read_tail(path, 2)
    assert refused.value.rule_id == "audit.overlong_line"


def test_bounded_lines_cut_an_overlong_line_and_keep_the_lines_after_it_in_place() -> None:
    overlong = b"x" * (3 * MAX_RECORD_BYTES) + b"\n"
    got = list(bounded_lines(io.BytesIO(b"a\n" + overlong + b"b\n" + b"c")))
    assert [len(line) for line in got] == [2, MAX_RECORD_BYTES + 1, 2, 1] and got[2:] == [b"b\n", b"c"]


@pytest.mark.parametrize("reader", ["crosscheck", "overrides"])
def test_readers_of_every_line_pass_a_junk_line_without_holding_it(path: Path, reader: str) -> None:
    """crosscheck's scan (audit verify) and the overrides records (read at every server start)."""
    _append_sparse_junk(path, 256 * 2**20, newline=True)
    with _bounded(peak_bytes=4 * MAX_RECORD_BYTES, read_bytes=2**40):
        found = crosscheck(path, [], None).findings if reader == "crosscheck" else chained_records(path)
    assert found == []
