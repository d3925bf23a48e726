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

import re
import threading
from pathlib import Path

from server.audit.records import parse_line
from server.audit.tail import ChainTail

_MARKER = b'"tool":"open_pr"'
_COMMIT = re.compile(r"^[0-9a-f]{40}\Z")


class PushedCommits:
    """Commits of the ok outcomes of open_pr in one chain, read incrementally (the chain only grows)."""

    def __init__(self, audit_path: Path | str) -> None:
        self.path = Path(audit_path)
        self._mutex = threading.Lock()
        self._tail = ChainTail(self.path)
        self._commits: set[str] = set()

    def commits(self) -> set[str]:
        with self._mutex:
            for restarted, data in self._tail.pieces():
                if restarted:
                    self._commits = set()
                for line in data.splitlines(keepends=True):
                    if _MARKER in line and b'"kind":"outcome"' in line:
                        self._consider(line)
            return set(self._commits)

    def _consider(self, line: bytes) -> None:
        record, problem = parse_line(line)
        if problem is None and record is not None and (record.get("kind"), record.get("tool"), record.get("status")) == ("outcome", "open_pr", "ok"):
            self._commits.update([record["commit"]] if _COMMIT.match(str(record.get("commit"))) else [])
