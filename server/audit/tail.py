"""The lines appended to an audit chain file since the last read.

Several views (the vouching ledger, acknowledgements, pushed PR commits, chained run metrics) keep
state built from the chain and must not re-read a chain of 10^6 records on every call. The chain
only grows, so each remembers how far it read; a file replaced or cut is read again from its start
(`mlgate audit verify` reports why it changed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class NewLines(NamedTuple):
    restarted: bool  # `data` starts at the file's beginning: forget what earlier lines built
    data: bytes  # complete lines, each with its newline; a torn last line waits for its end


class ChainTail:
    """Reads one chain file incrementally. Not thread-safe: its owner holds its own lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._key: tuple[int, int] | None = None  # (inode, offset read up to)

    def read(self) -> NewLines:
        """The complete lines appended since the last read; all of them after a replacement or cut,
        and none (restarted) while the file does not exist. Raises OSError when it cannot be read."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self._key = None
            return NewLines(True, b"")
        try:
            stat = os.fstat(fd)
            restarted = self._key is None or self._key[0] != stat.st_ino or stat.st_size < self._key[1]
            offset = 0 if restarted else self._key[1]
            data = os.pread(fd, stat.st_size - offset, offset)
        finally:
            os.close(fd)
        complete = data[: data.rfind(b"\n") + 1]
        self._key = (stat.st_ino, offset + len(complete))
        return NewLines(restarted, complete)
