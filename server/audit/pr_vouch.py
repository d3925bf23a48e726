"""The commits open_pr pushed, as the audit chain recorded them: what makes a PR record count.

PR records (`<state_dir>/prs/*.json`) and the workspace's branches are files and refs an agent with
its own shell can write: a record written by hand naming an unreviewed branch, or a PR branch moved
with `git branch -f`, would put any commit "on a recorded PR branch" without open_pr's checks
(training guard, protected fields, secrets) or a push. Every open_pr that pushed chains an outcome
record with the run's commit:

    outcome   tool open_pr, status ok, commit (the commit pushed to the PR branch), run_id

so promote counts a PR record's head (its recorded commit or its branch's head) only when it is a
commit such a record names (`commits()`).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from server.audit.records import parse_line

_MARKER = b'"tool":"open_pr"'
_COMMIT = re.compile(r"^[0-9a-f]{40}\Z")


class PushedCommits:
    """Commits of the ok outcomes of open_pr in one chain, read incrementally (the chain only grows)."""

    def __init__(self, audit_path: Path | str) -> None:
        self.path = Path(audit_path)
        self._mutex = threading.Lock()
        self._key: tuple[int, int] | None = None  # (inode, offset read up to)
        self._commits: set[str] = set()

    def commits(self) -> set[str]:
        with self._mutex:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                self._key, self._commits = None, set()
                return set()
            try:
                self._read_new(fd)
            finally:
                os.close(fd)
            return set(self._commits)

    def _read_new(self, fd: int) -> None:
        stat = os.fstat(fd)
        inode, offset = self._key or (stat.st_ino, 0)
        if inode != stat.st_ino or stat.st_size < offset:  # replaced or cut: read again (verify says why)
            inode, offset, self._commits = stat.st_ino, 0, set()
        data = os.pread(fd, stat.st_size - offset, offset)
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines(keepends=True):
            if _MARKER in line and b'"kind":"outcome"' in line:
                record, problem = parse_line(line)
                if problem is None and record is not None and (record.get("kind"), record.get("tool"), record.get("status")) == ("outcome", "open_pr", "ok"):
                    self._commits.update([record["commit"]] if _COMMIT.match(str(record.get("commit"))) else [])
        self._key = (inode, offset + len(complete))
