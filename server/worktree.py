"""A run's files as they were at its commit, whatever the working tree holds now (reproduce).

`Worktrees.read_files` reads the bytes git stores at the commit straight from the object store:
nothing is checked out, so no filter, hook or worktree-only config of the workspace runs. A link,
submodule or file on the path is refused, not followed. `Worktrees.checkout` gives a temporary
detached `git worktree` under `<state_dir>/worktrees/`, removed (and pruned from .git) when the
block ends, however it ends; `read_regular` reads a file in such a tree without following links.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from server.git import SAFE_PATH, GitRepo, check_commit
from tools.errors import GitRefused, IntegrityError

MAX_FILE_BYTES = 4 * 2**20
REGULAR = ("100644", "100755")  # git's modes of regular files (120000 is a link, 160000 a submodule)


def read_regular(root: Path, relpath: str, max_bytes: int = MAX_FILE_BYTES) -> bytes | None:
    """Bytes of the regular file `relpath` under `root`, None when absent. Raises IntegrityError
    for a symlink anywhere on the path, a non-regular file or an oversize file."""
    if not SAFE_PATH.fullmatch(relpath):
        raise GitRefused(f"refused path {relpath!r}", "use a relative path")
    fd = _open_without_links(root, relpath)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(relpath)
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise IntegrityError(f"{relpath} at the run's commit is over {max_bytes} bytes", "keep workspace source files small", rule_id="reproduce.file")
    return data


def _open_without_links(root: Path, relpath: str) -> int | None:
    """A descriptor of `relpath`, walked one component at a time with O_NOFOLLOW; None if absent."""
    parts = relpath.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for index, part in enumerate(parts):
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_DIRECTORY if index < len(parts) - 1 else 0)
        try:
            child = os.open(part, flags, dir_fd=fd)
        except FileNotFoundError:
            return None
        except OSError:
            raise _not_regular(relpath) from None
        finally:
            os.close(fd)
        fd = child
    return fd


def _not_regular(relpath: str) -> IntegrityError:
    return IntegrityError(f"{relpath} at the run's commit is a symbolic link or not a regular file", "commit regular files only", rule_id="reproduce.file")


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class Worktrees:
    def __init__(self, repo: GitRepo, root: Path) -> None:
        self.repo = repo
        self.root = Path(root)

    @contextmanager
    def checkout(self, commit: str) -> Iterator[Path]:
        """A detached worktree at `commit` for the block. Raises GitRefused for a bad commit."""
        check_commit(commit)
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="wt-", dir=self.root))
        try:
            self.repo.run("worktree", "add", "--detach", "--quiet", "--", str(path), commit)
            yield path
        finally:
            self.repo.run("worktree", "remove", "--force", "--", str(path), check=False)
            shutil.rmtree(path, ignore_errors=True)
            self.repo.run("worktree", "prune", check=False)

    def read_files(self, commit: str, relpaths: Sequence[str]) -> dict[str, bytes | None]:
        """{relpath: the bytes git stores at `commit`, or None where the commit has no such file}.
        Read from the object store, never checked out: a checkout runs in a worktree context whose
        config (an `includeIf "gitdir:"`) the inert overrides never see, and rewrites files through
        filters and attributes. Raises GitRefused for a bad commit or path, IntegrityError for a
        link, submodule or file on the path, or an oversize file."""
        check_commit(commit)
        return {relpath: self._stored(commit, relpath) for relpath in relpaths}

    def _stored(self, commit: str, relpath: str) -> bytes | None:
        if not SAFE_PATH.fullmatch(relpath):
            raise GitRefused(f"refused path {relpath!r}", "use a relative path")
        parts = relpath.split("/")
        wanted = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        listing = self.repo.run("ls-tree", "-z", "--full-tree", commit, "--", *wanted).stdout.decode("utf-8", "replace")
        modes = {entry.split("\t", 1)[1]: entry.split(" ", 1)[0] for entry in listing.split("\0") if "\t" in entry}
        if any(path in modes for path in wanted[:-1]) or modes.get(relpath, REGULAR[0]) not in REGULAR:
            raise _not_regular(relpath)
        data = self.repo.blob_at(commit, relpath) if relpath in modes else None
        if data is not None and len(data) > MAX_FILE_BYTES:
            raise IntegrityError(f"{relpath} at the run's commit is over {MAX_FILE_BYTES} bytes", "keep workspace source files small", rule_id="reproduce.file")
        return data
