"""A run's files as they were at its commit, whatever the working tree holds now (reproduce).

`Worktrees.read_files` reads the bytes git stores at the commit straight from the object store:
nothing is checked out, so no filter, hook or worktree-only config of the workspace runs (a
checkout would run git in a worktree context whose config the server never made inert). A link,
submodule or file on the path is refused, not followed.
"""

from __future__ import annotations

from collections.abc import Sequence

from server.git import SAFE_PATH, GitRepo, check_commit
from tools.errors import GitRefused, IntegrityError

MAX_FILE_BYTES = 4 * 2**20
REGULAR = ("100644", "100755")  # git's modes of regular files (120000 is a link, 160000 a submodule)


def _not_regular(relpath: str) -> IntegrityError:
    return IntegrityError(f"{relpath} at the run's commit is a symbolic link or not a regular file", "commit regular files only", rule_id="reproduce.file")


class Worktrees:
    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo

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
