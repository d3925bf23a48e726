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
