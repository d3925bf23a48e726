"""server/cas_entries.py read_entry on real files: kept bytes for parsing, verification hashed in
pieces, and a file whose size is not what was checked refused."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.cas_entries import Problem, StoredFile, read_entry

BIG = 64 * 2**20


@pytest.fixture
def dir_fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    (tmp_path / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_verifying_a_large_file_holds_a_piece_of_it_not_the_whole(tmp_path: Path, dir_fd: int) -> None:
    expected = _write(tmp_path, "big.csv", os.urandom(1024) * (BIG // 1024))
    tracemalloc.start()
    try:
        found = read_entry(dir_fd, "big.csv", max_bytes=2**30, expected=BIG, keep=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(found, StoredFile) and (found.sha256, found.size, found.data) == (expected, BIG, None)
    assert peak < 4 * 2**20, peak


def test_kept_bytes_are_the_hashed_bytes(tmp_path: Path, dir_fd: int) -> None:
    expected = _write(tmp_path, "small.csv", b"a,b\n1,2\n")
    found = read_entry(dir_fd, "small.csv", max_bytes=2**20, expected=8, keep=True)
    assert isinstance(found, StoredFile) and (found.sha256, found.data) == (expected, b"a,b\n1,2\n")


@pytest.mark.parametrize("keep", [True, False])
def test_a_file_of_another_size_than_its_manifest_records_is_refused_unread(tmp_path: Path, dir_fd: int, keep: bool) -> None:
    _write(tmp_path, "small.csv", b"a,b\n1,2\n")
    found = read_entry(dir_fd, "small.csv", max_bytes=2**20, expected=7, keep=keep)
    assert isinstance(found, Problem) and found.kind == "modified" and "its manifest records 7" in found.detail
