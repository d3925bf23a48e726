"""Reading an audit chain incrementally (server/audit/tail.py)."""

from __future__ import annotations

import os
from pathlib import Path

from server.audit.tail import ChainTail, NewLines


def test_each_appended_line_is_read_once_and_a_torn_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"seq":0}\n{"seq":1')
    tail = ChainTail(path)
    assert tail.read() == NewLines(True, b'{"seq":0}\n')
    with path.open("ab") as chain:
        chain.write(b'}\n{"seq":2}\n')
    assert tail.read() == NewLines(False, b'{"seq":1}\n{"seq":2}\n')
    assert tail.read() == NewLines(False, b"")


def test_a_replaced_or_cut_chain_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"a\nb\n")
    tail = ChainTail(path)
    tail.read()
    path.write_bytes(b"a\n")  # cut (same inode)
    assert tail.read() == NewLines(True, b"a\n")
    replacement = tmp_path / "other.jsonl"
    replacement.write_bytes(b"x\n")
    os.replace(replacement, path)  # replaced (another inode), even when no shorter
    assert tail.read() == NewLines(True, b"x\n")


def test_a_missing_chain_reads_as_empty_and_restarts_once_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    tail = ChainTail(path)
    assert tail.read() == NewLines(True, b"")
    path.write_bytes(b"a\n")
    assert tail.read() == NewLines(True, b"a\n")


def _pieces(tail: ChainTail) -> list[NewLines]:
    return [p for p in tail.pieces() if p.data or p.restarted]


def test_a_long_chain_is_handed_out_in_pieces_ending_at_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    lines = [b'{"seq":%d}\n' % i for i in range(100)]
    path.write_bytes(b"".join(lines))
    pieces = _pieces(ChainTail(path, piece_bytes=64))
    assert pieces[0] == NewLines(True, b"") and all(not p.restarted for p in pieces[1:])
    assert all(0 < len(p.data) <= 64 and p.data.endswith(b"\n") for p in pieces[1:])
    assert b"".join(p.data for p in pieces) == b"".join(lines)


def test_a_line_longer_than_a_piece_is_stepped_over_and_a_torn_one_waits(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"seq":0}\n' + b"x" * 500 + b'\n{"seq":2}\n' + b"y" * 300)
    tail = ChainTail(path, piece_bytes=64)
    assert tail.read() == NewLines(True, b'{"seq":0}\n{"seq":2}\n')
    with path.open("ab") as chain:
        chain.write(b'\n{"seq":4}\n')
    assert tail.read() == NewLines(False, b'{"seq":4}\n')


def test_a_first_read_of_a_long_chain_holds_a_piece_not_the_chain(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "audit.jsonl"
    path.write_bytes((b'{"kind":"filler","x":"' + b"y" * 1000 + b'"}\n') * 65536)  # 64 MiB
    tracemalloc.start()
    try:
        seen = sum(len(p.data) for p in ChainTail(path, piece_bytes=2**20).pieces())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == path.stat().st_size and peak < 8 * 2**20, peak  # a few pieces of 1 MiB, not 64 MiB


def test_a_file_cut_while_its_pieces_are_read_ends_them_where_it_now_ends(tmp_path: Path) -> None:
    from server.audit.tail import line_pieces

    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"".join(b'{"seq":%d}\n' % i for i in range(100)))
    fd = os.open(path, os.O_RDONLY)
    try:
        seen = []
        for offset, piece in line_pieces(fd, 0, path.stat().st_size, piece_bytes=64):
            seen.append(bytes(piece))
            os.truncate(path, 100)  # cut under the reader after its first piece
        assert b"".join(seen) == path.read_bytes()[:offset] and offset <= 100
    finally:
        os.close(fd)
