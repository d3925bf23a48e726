"""Reads the project's standards from the protected ref (never the working tree) and builds the
policy config every call is decided against. With an acknowledgement check, no config is given
out unless the standards and server config in force are the ones a human or operator last
acknowledged (rule standards.acknowledged, server/acknowledgements.py): every governed call is
refused, naming the drift, until `mlgate standards accept`."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

from policies.decision import decide_one
from policies.standards import standards_acknowledged
from server.git import GitRepo
from server.safe_yaml import load_document
from server.settings import policy_limits
from tools.errors import IntegrityError, PolicyDenied

STANDARDS_PATH = "configs/project_standards.yaml"


def read_branch_sha(git_dir: Path, branch: str) -> str | None:
    """The commit a local branch points at, read from the ref files without starting git; None
    when it cannot be read that way (the caller then asks git)."""
    try:
        loose = git_dir / "refs" / "heads" / branch
        if loose.is_file():
            return _sha_or_none(loose.read_text().strip())
        for line in (git_dir / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == f"refs/heads/{branch}":
                return _sha_or_none(sha)
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _sha_or_none(text: str) -> str | None:
    return text if len(text) == 40 and all(c in "0123456789abcdef" for c in text) else None


class StandardsSource:
    """Caches the parsed standards per commit of the protected ref: a commit id names its content,
    so the cache can never serve standards other than the ones committed there."""

    def __init__(self, git: GitRepo, protected_ref: str, acknowledgements: Any = None) -> None:
        """`acknowledgements`: an AcknowledgementCheck (server/acknowledgement_check.py); None
        gives the config unchecked (tests of the reading itself)."""
        self._git = git
        self._ref = protected_ref
        self._acknowledgements = acknowledgements
        self._limits = policy_limits()
        self._cached: tuple[str, bytes, dict[str, Any]] | None = None

    def committed_bytes(self) -> bytes:
        """Raises IntegrityError when the protected ref has no standards file."""
        data = self._git.show(self._ref, STANDARDS_PATH)
        if data is None:
            raise IntegrityError(
                f"{STANDARDS_PATH} is not committed on {self._ref}",
                f"commit the standards to {self._ref} (mlgate init does this)",
                rule_id="standards.available",
            )
        return data

    def working_tree_bytes(self) -> bytes | None:
        path = Path(self._git.path) / STANDARDS_PATH
        return path.read_bytes() if path.is_file() else None

    def _committed(self) -> tuple[bytes, dict[str, Any]]:
        sha = read_branch_sha(Path(self._git.path) / ".git", self._ref)
        if sha is not None and self._cached is not None and self._cached[0] == sha:
            return self._cached[1], self._cached[2]
        committed = self.committed_bytes() if sha is None else self._show_at(sha)
        standards = load_document(committed, self._limits["documents"], name=STANDARDS_PATH)
        if sha is not None:
            self._cached = (sha, committed, standards)
        return committed, standards

    def _show_at(self, sha: str) -> bytes:
        data = self._git.show(sha, STANDARDS_PATH)
        return data if data is not None else self.committed_bytes()

    def policy_config(self) -> dict[str, Any]:
        """`{standards, standards_sha256, standards_drift, policy, acknowledgement}` for the policies.

        Raises IntegrityError when the standards are not committed, PolicyDenied (rule
        standards.acknowledged) when they or the server config are not the acknowledged ones."""
        committed, standards = self._committed()
        config = {
            "standards": copy.deepcopy(standards),
            "standards_sha256": hashlib.sha256(committed).hexdigest(),
            "standards_drift": self.working_tree_bytes() != committed,
            "policy": self._limits,
        }
        if self._acknowledgements is not None:
            config["acknowledgement"] = self._acknowledgements.facts(self._ref, committed)
            decision = decide_one(standards_acknowledged, None, config)
            if not decision.allowed:
                raise PolicyDenied(decision.reason, decision.remediation, rule_id=decision.rule_id)
        return config
