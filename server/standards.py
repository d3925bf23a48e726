"""Reads the project's standards from the protected ref (never the working tree) and builds the
policy config every call is decided against."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from server.git import GitRepo
from server.safe_yaml import load_document
from server.settings import policy_limits
from tools.errors import IntegrityError

STANDARDS_PATH = "configs/project_standards.yaml"


class StandardsSource:
    def __init__(self, git: GitRepo, protected_ref: str) -> None:
        self._git = git
        self._ref = protected_ref
        self._limits = policy_limits()

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

    def policy_config(self) -> dict[str, Any]:
        """`{standards, standards_sha256, standards_drift, policy}` for the policies."""
        committed = self.committed_bytes()
        standards = load_document(committed, self._limits["documents"], name=STANDARDS_PATH)
        return {
            "standards": standards,
            "standards_sha256": hashlib.sha256(committed).hexdigest(),
            "standards_drift": self.working_tree_bytes() != committed,
            "policy": self._limits,
        }
