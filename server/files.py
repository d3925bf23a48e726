"""Small file primitives the state directory relies on: an exclusive lock file, atomic, durable
replacement (temp file beside the target, fsync, rename, fsync the directory) and reads that never
follow a link or wait on a FIFO (in stdio mode the agent can plant either in the state directory)."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def private_dir(path: Path) -> Path:
    """`path` as a directory; created 0700 when missing (an existing one keeps the mode its owner
    gave it). The state directory holds the tracking store, approvals and run directories: other
    OS users of the host have no business listing or reading them."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def open_to_others(path: Path) -> int | None:
    """The directory's mode when users outside its owner's group may enter or list it, else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & 0o007 else None


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists, so the library that fills it later (sqlite)
    keeps that mode and never makes it world-readable."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created 0600, never through a symlink)."""
    private_dir(lock_path.parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class NotRegular(OSError):
    """The path is a symbolic link, a FIFO, a device or a directory, not a regular file."""


@contextmanager
def open_regular(path: Path) -> Iterator[int]:
    """A read descriptor of the regular file at `path`: O_NOFOLLOW, and O_NONBLOCK so that a FIFO
    is refused at once instead of blocking until a writer comes. Raises FileNotFoundError,
    NotRegular and OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(errno.ELOOP, "a symbolic link, not a regular file", str(path)) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(errno.EINVAL, "not a regular file", str(path))
        yield fd
    finally:
        os.close(fd)


class TooLarge(OSError):
    """The file holds more bytes than its reader allows (its strerror says how many, and the cap)."""


def read_at_most(fd: int, limit: int) -> bytes:
    """At most `limit` + 1 bytes from `fd`'s offset: a result longer than `limit` shows that the
    file is larger (also one that grew after its size was checked) without reading any more of it."""
    with open(fd, "rb", closefd=False) as stream:
        return stream.read(limit + 1)


def too_large(what: str, size: int, cap: int, cap_name: str) -> str:
    """The words every size refusal uses: '<what> holds N bytes, over the <cap_name> cap (M)'."""
    return f"{what} holds {size} bytes, over the {cap_name} cap ({cap})"


def read_regular(path: Path, max_bytes: int, cap_name: str = "size") -> bytes:
    """The bytes of the regular file at `path` (see open_regular), refused by its size before it
    is read when over `max_bytes` (a sparse file costs its writer nothing). Raises
    FileNotFoundError, NotRegular, TooLarge and OSError."""
    with open_regular(path) as fd:
        size = os.fstat(fd).st_size
        data = read_at_most(fd, max_bytes) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:
        raise TooLarge(errno.EFBIG, too_large(path.name, max(size, len(data)), max_bytes, cap_name), str(path))
    return data


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(target: Path, data: bytes, mode: int = 0o644) -> Path:
    """`data` in a fresh, fsynced temp file beside `target` (to be renamed over it); its path."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return temp


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `target` with `data` so that readers see the old or the new bytes, never a mix,
    and the new bytes survive a crash once this returns."""
    temp = write_temp(target, data, mode)
    try:
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
