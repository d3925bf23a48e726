"""The lines appended to an audit chain file since the last read.

Several views (the vouching ledger, acknowledgements, pushed PR commits, chained run metrics) keep
state built from the chain and must not re-read a chain of 10^6 records on every call. The chain
only grows, so each remembers how far it read; a file replaced or cut is read again from its start
(`mlgate audit verify` reports why it changed). What is new is handed out in pieces of at most
PIECE_BYTES, each ending at a line's end, so a first read of a long chain never holds all of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

PIECE_BYTES = 8 * 2**20  # records are at most 1 MiB; a longer line is no record and is skipped


class NewLines(NamedTuple):
    restarted: bool  # `data` starts at the file's beginning: forget what earlier lines built
    data: bytes  # complete lines, each with its newline; a torn last line waits for its end


class ChainTail:
    """Reads one chain file incrementally. Not thread-safe: its owner holds its own lock."""

    def __init__(self, path: Path | str, piece_bytes: int = PIECE_BYTES) -> None:
        self.path = Path(path)
        self._piece = piece_bytes
        self._key: tuple[int, int] | None = None  # (inode, offset read up to)

    def read(self) -> NewLines:
        """Everything `pieces` hands out, in one piece."""
        found = list(self.pieces())
        return NewLines(found[0].restarted, b"".join(p.data for p in found))

    def pieces(self) -> Iterator[NewLines]:
        """The complete lines appended since the last read (all of them after a replacement or
        cut), in pieces; only the first can say `restarted`, and there is always a first. None
        but a restart while the file does not exist. Raises OSError when it cannot be read."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._key = None
            yield NewLines(True, b"")
            return
        try:
            stat = os.fstat(fd)
            restarted = self._key is None or self._key[0] != stat.st_ino or stat.st_size < self._key[1]
            self._key = (stat.st_ino, 0 if restarted else self._key[1])  # type: ignore[index]
            yield NewLines(restarted, b"")
            yield from self._read_pieces(fd, stat.st_size)
        finally:
            os.close(fd)

    def _read_pieces(self, fd: int, end: int) -> Iterator[NewLines]:
        inode, offset = self._key  # type: ignore[misc]
        for offset, data in line_pieces(fd, offset, end, self._piece):
            self._key = (inode, offset)
            if data:
                yield NewLines(False, bytes(data))


def line_pieces(fd: int, offset: int, end: int, piece_bytes: int = PIECE_BYTES) -> Iterator[tuple[int, memoryview]]:
    """The complete lines of `fd` between `offset` (a line's start) and `end`, in pieces of at most
    `piece_bytes` each ending at a line's end, with the offset just past each (an empty piece: a
    line longer than a piece was stepped over, never held). A torn last line is left out; a file
    cut shorter while read ends the pieces where it now ends. Bounded reads, never a map: a file
    cut while read cannot kill the reader (SIGBUS). One buffer is read into again and again: each
    piece is a view of its start (`piece.obj`, a bytearray that can be searched in place) and holds
    its lines only until the next piece is asked for. Raises OSError when it cannot be read."""
    raw = bytearray(min(piece_bytes, max(end - offset, 0)))
    buffer = memoryview(raw)
    while offset < end:
        got = os.preadv(fd, [buffer[: min(piece_bytes, end - offset)]], offset)
        cut = raw.rfind(b"\n", 0, got) + 1
        if cut:
            offset += cut
            yield offset, buffer[:cut]
            continue
        after = _after_line(fd, offset + piece_bytes, end, raw) if got == piece_bytes else None
        if after is None:
            return  # a torn last line (or an overlong one, or a cut file) waits for its end
        offset = after
        yield offset, buffer[:0]


def _after_line(fd: int, at: int, end: int, raw: bytearray) -> int | None:
    """The offset just past the next newline at or after `at`, read into `raw` a piece at a time;
    None when none is written yet (or the file was cut)."""
    while at < end:
        got = os.preadv(fd, [memoryview(raw)[: min(len(raw), end - at)]], at)
        found = raw.find(b"\n", 0, got)
        if found >= 0:
            return at + found + 1
        if not got:
            return None
        at += got
    return None
