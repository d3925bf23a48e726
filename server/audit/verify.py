"""`verify(path)`: checks an audit chain file against its anchor, reading only.

Problem kinds, each reported at the first record where it shows:

    edited            a line is not valid JSON, not canonical, longer than any record, or its hash does not match
    deleted           a seq is missing and does not appear later
    reordered         a seq appears out of order (moved or duplicated)
    broken_link       `prev` is not the previous record's hash (a record was rewritten and re-hashed)
    truncated         the anchor holds more than the file (anchored records or bytes were cut)
    torn_tail         the last line has no newline (a write was cut off after the anchored head)
    anchor_mismatch   the record at the anchored offset is not the anchored head (the chain was rewritten)
    anchor_missing    the file holds records but the anchor file is gone
    anchor_unreadable the anchor file is not a valid anchor
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from server.audit.records import GENESIS, MAX_RECORD_BYTES, RECOVERED_KIND, Head, loads, parse_line, read_anchor, sibling
from tools.errors import IntegrityError


@dataclass(frozen=True)
class Problem:
    kind: str
    line: int  # 1-based line of the chain file; 0 when the problem is the anchor file itself
    seq: int | None  # the seq found on that line (or the first missing one)
    detail: str


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    count: int  # records verified (before the problem, if any)
    head_seq: int
    head_hash: str
    anchor_seq: int | None
    recovered: tuple[int, ...] = ()  # seqs of recovered_torn_tail records
    problem: Problem | None = None

    def summary(self) -> str:
        """One line for the CLI."""
        if self.problem is not None:
            p = self.problem
            where = f"line {p.line}" + (f" (seq {p.seq})" if p.seq is not None else "")
            return f"audit chain BROKEN: {p.kind} at {where}: {p.detail} [{self.count} records verified before it]"
        if self.count == 0:
            return "audit chain intact: no records yet"
        text = f"audit chain intact: {self.count} records, head seq {self.head_seq} {self.head_hash[:16]}"
        text += f", anchored at seq {self.anchor_seq}" if self.anchor_seq is not None and self.anchor_seq >= 0 else ""
        if self.recovered:
            text += f"; {len(self.recovered)} recovered torn tail(s) at seq {', '.join(map(str, self.recovered))}"
        return text


def verify(path: Path | str, on_record: Callable[[dict], None] | None = None) -> VerifyReport:
    """Verifies the chain at `path` and its sibling anchor. Never raises for a damaged chain.
    `on_record` sees each record once its hash, seq and link are checked, in chain order, and none
    after the first problem; a rewrite shows only at the anchor, so trust them once the report is ok."""
    path = Path(path)
    try:
        anchor = read_anchor(sibling(path, "head"))
    except IntegrityError as exc:
        return _Walk(None).report(Problem("anchor_unreadable", 0, None, exc.reason))
    walk = _Walk(anchor, on_record)
    if not path.exists():
        return walk.report(walk.finish())
    with path.open("rb") as stream:
        return walk.report(walk.run(_bounded_lines(stream)))


def _bounded_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The file's lines; one longer than any record is cut after MAX_RECORD_BYTES + 1 bytes and
    ends the lines (the walk stops at it), so a junk line of any length is never held or read whole."""
    while line := stream.readline(MAX_RECORD_BYTES + 1):
        yield line
        if len(line) > MAX_RECORD_BYTES:
            return


class _Walk:
    def __init__(self, anchor: Head | None, on_record: Callable[[dict], None] | None = None) -> None:
        self.anchor = anchor
        self.on_record = on_record
        self.head = GENESIS
        self.count = 0
        self.recovered: list[int] = []
        self.anchor_seen = anchor is None or anchor.seq < 0

    def report(self, problem: Problem | None) -> VerifyReport:
        anchor_seq = self.anchor.seq if self.anchor is not None else None
        return VerifyReport(problem is None, self.count, self.head.seq, self.head.hash, anchor_seq, tuple(self.recovered), problem)

    def run(self, lines: Iterator[bytes]) -> Problem | None:
        lines = iter(lines)
        for line_no, raw in enumerate(lines, 1):
            problem = self.step(raw, line_no, lines)
            if problem is not None:
                return problem
        return self.finish()

    def step(self, raw: bytes, line_no: int, rest: Iterator[bytes]) -> Problem | None:
        if len(raw) > MAX_RECORD_BYTES:
            return Problem("edited", line_no, None, f"the line is longer than any record ({MAX_RECORD_BYTES} bytes)")
        if not raw.endswith(b"\n"):
            return self.torn(line_no)
        record, why = parse_line(raw)
        if why is not None:
            return Problem("edited", line_no, record.get("seq") if record else None, why)
        expected = self.head.seq + 1
        if record["seq"] != expected:
            return _out_of_order(record["seq"], expected, line_no, rest)
        if record["prev"] != self.head.hash:
            detail = f"prev is not the hash of seq {expected - 1}: a record was rewritten and re-hashed, or the chain relinked"
            return Problem("broken_link", line_no, expected, detail)
        self.advance(record, len(raw))
        problem = self.check_anchor(line_no)
        if problem is None and self.on_record is not None:
            self.on_record(record)
        return problem

    def advance(self, record: dict, size: int) -> None:
        self.head = Head(record["seq"], record["hash"], self.head.offset + size)
        self.count += 1
        if record.get("kind") == RECOVERED_KIND:
            self.recovered.append(record["seq"])

    def check_anchor(self, line_no: int) -> Problem | None:
        anchor = self.anchor
        if self.anchor_seen or anchor is None or anchor.offset > self.head.offset:
            return None
        self.anchor_seen = True
        if (anchor.offset, anchor.seq, anchor.hash) != (self.head.offset, self.head.seq, self.head.hash):
            detail = f"the anchor holds seq {anchor.seq} {anchor.hash[:16]} at byte {anchor.offset}; the chain was rewritten up to here"
            return Problem("anchor_mismatch", line_no, self.head.seq, detail)
        return None

    def torn(self, line_no: int) -> Problem:
        if self.anchor is not None and self.anchor.offset > self.head.offset:
            return self.truncated(line_no)
        detail = "the last line has no newline: a write was cut off; opening the chain quarantines it into a side file"
        return Problem("torn_tail", line_no, self.head.seq + 1, detail)

    def truncated(self, line_no: int) -> Problem:
        detail = f"the anchor holds seq {self.anchor.seq} but the file's records end at seq {self.head.seq}"
        return Problem("truncated", line_no, self.head.seq + 1, detail)

    def finish(self) -> Problem | None:
        if self.anchor is None and self.count:
            return Problem("anchor_missing", 0, None, "the chain holds records but its anchor file is missing")
        if self.anchor is not None and self.anchor.offset > self.head.offset:
            return self.truncated(self.count + 1)
        return None


def _out_of_order(seq: int, expected: int, line_no: int, rest: Iterator[bytes]) -> Problem:
    if seq < expected:
        return Problem("reordered", line_no, seq, f"seq {seq} appears after seq {expected - 1} (moved or duplicated)")
    if _appears_later(expected, rest):
        return Problem("reordered", line_no, seq, f"expected seq {expected}, found {seq}; seq {expected} appears later")
    return Problem("deleted", line_no, seq, f"expected seq {expected}, found {seq}: {seq - expected} record(s) removed")


def _appears_later(seq: int, rest: Iterator[bytes]) -> bool:
    for raw in rest:
        try:
            record = loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("seq") == seq:
            return True
    return False
