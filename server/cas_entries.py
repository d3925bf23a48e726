"""One entry of a dataset directory (server/cas.py), opened relative to the directory's descriptor
without following links, checked by fstat (a regular file with one link, of the size expected) and
read once, at most one byte past that size. Sizes are checked before any byte is read: a sparse
file far larger than memory costs whoever plants it nothing, and is refused unread."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from server.files import read_at_most, too_large

FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FILE_CAP = "datasets.max_file_bytes"
HASH_PIECE = 2**20


@dataclass(frozen=True)
class StoredFile:
    """One file of a dataset, with the bytes that were hashed (never shown in reprs; None when
    the caller only verified and did not keep them)."""

    path: str
    size: int
    sha256: str
    data: bytes | None = field(repr=False, compare=False)

    def entry(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Problem:
    kind: str  # symlink | hardlink | not_regular | unreadable | extra | missing | modified | too_large | manifest | too_many_files | name
    path: str
    detail: str


def is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _open_checked(dir_fd: int, name: str, single_link: bool) -> tuple[int, int] | Problem:
    """(descriptor, size) of `name`, opened without following links, a regular file with one
    link (unless not `single_link`); else why not. The caller closes the descriptor."""
    try:
        if is_link(dir_fd, name):
            return Problem("symlink", name, f"{name} is a symbolic link")
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        kind = "symlink" if exc.errno == errno.ELOOP else "unreadable"
        return Problem(kind, name, f"{name} cannot be opened ({errno.errorcode.get(exc.errno or 0, 'error')})")
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = Problem("not_regular", name, f"{name} is not a regular file")
    elif single_link and info.st_nlink != 1:
        problem = Problem("hardlink", name, f"{name} has {info.st_nlink} hard links (another name could change its bytes)")
    if problem is not None:
        os.close(fd)
        return problem
    return fd, info.st_size


def _size_problem(name: str, size: int, expected: int | None, max_bytes: int, cap_name: str) -> Problem | None:
    if expected is not None and size != expected:
        return Problem("modified", name, f"{name} holds {size} bytes, its manifest records {expected} (changed after import)")
    if size > max_bytes:
        return Problem("too_large", name, too_large(name, size, max_bytes, cap_name))
    return None


def read_entry(dir_fd: int, name: str, *, max_bytes: int, expected: int | None = None, single_link: bool = True, keep: bool = True, cap_name: str = FILE_CAP) -> StoredFile | Problem:
    """Open `name` without following links and read it once, or say why not. Its size (fstat) must
    be `expected` when given and at most `max_bytes`, else it is refused unread; at most one byte
    past that size is read. `single_link`: a file with other hard links is refused (another name
    could change its bytes). `keep`: hold on to the bytes (to parse them); verification alone
    drops them after hashing."""
    opened = _open_checked(dir_fd, name, single_link)
    if isinstance(opened, Problem):
        return opened
    fd, size = opened
    try:
        refused = _size_problem(name, size, expected, max_bytes, cap_name)
        data, digest, got = _read_and_hash(fd, size, keep) if refused is None else (None, "", size)
    finally:
        os.close(fd)
    if refused is None and got != size:
        refused = Problem("modified", name, f"{name} changed size while it was read (fstat said {size} bytes)")
    return refused or StoredFile(name, size, digest, data)


def _read_and_hash(fd: int, size: int, keep: bool) -> tuple[bytes | None, str, int]:
    """(the bytes when `keep`, their SHA-256, how many were read), at most one byte past `size`.
    Not kept, they are hashed piece by piece: verifying a 1 GiB file holds HASH_PIECE of it."""
    if keep:
        data = read_at_most(fd, size)
        return data, hashlib.sha256(data).hexdigest(), len(data)
    digest, got = hashlib.sha256(), 0
    with open(fd, "rb", closefd=False) as stream:
        while got <= size and (piece := stream.read(min(HASH_PIECE, size + 1 - got))):
            digest.update(piece)
            got += len(piece)
    return None, digest.hexdigest(), got


def check_entry(dir_fd: int, name: str) -> Problem | None:
    """What read_entry checks before reading (link, type, one link), without reading a byte."""
    opened = _open_checked(dir_fd, name, True)
    if isinstance(opened, Problem):
        return opened
    os.close(opened[0])
    return None
