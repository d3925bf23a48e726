"""The standards resource: the project's standards exactly as committed on the protected ref.

Read-only. The text is the committed bytes every call is decided against, with their SHA-256 and a
drift flag that is true when the working-tree copy differs (drift is reported, never obeyed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from resources.base import ReadContext, ResourceSpec
from tools import strict_json

STANDARDS_URI = "mlgate://standards"
DESCRIPTION = (
    "configs/project_standards.yaml as committed on the protected branch (the rules every call is "
    "decided against), as JSON: {ref, sha256, drift, yaml}. drift=true means the working-tree copy "
    "differs; the committed version is the one in force."
)


class StandardsBytes(Protocol):
    def committed_bytes(self) -> bytes:
        """The file on the protected ref. Raises GovernanceError when it is missing."""
        ...

    def working_tree_bytes(self) -> bytes | None: ...


def standards_document(source: StandardsBytes, ref: str) -> dict[str, Any]:
    """`{ref, sha256, drift, yaml}` from one read of the committed bytes."""
    committed = source.committed_bytes()
    return {
        "ref": ref,
        "sha256": hashlib.sha256(committed).hexdigest(),
        "drift": source.working_tree_bytes() != committed,
        "yaml": committed.decode("utf-8", errors="replace"),
    }


def _read(ctx: ReadContext, params: Mapping[str, str]) -> str:
    """Raises GovernanceError when the standards are not committed."""
    return strict_json.dumps(standards_document(ctx.ports.standards, ctx.ports.settings.protected_ref), sort_keys=True)


SPECS = (ResourceSpec(STANDARDS_URI, "standards", "Project standards", DESCRIPTION, _read, requires=("standards",)),)
