"""An operator acknowledging the standards and server config in force, as `mlgate standards accept`
does (real token issued through the TokenStore, real audit chain record, pin written)."""

from __future__ import annotations

from typing import Any

from server.acknowledgements import observe, record_acknowledgement
from server.git import GitRepo
from server.settings import Settings
from tests.credentials import approver


def accept_standards(settings: Settings, name: str = "olga") -> dict[str, Any]:
    """Chain the acknowledgement of what is in force now by operator `name`; the chained record."""
    git = GitRepo(settings.workspace)
    return record_acknowledgement(settings, observe(git, settings), approver(settings.state_dir, name, "operator"), via="accept", commit=git.head())
