"""The audit tail resource: the last records of the audit chain, read-only.

Reading the tail is not verification; `mlgate audit verify` checks the whole chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from resources.base import ReadContext, ResourceSpec
from tools import strict_json

TAIL_URI = "mlgate://audit/tail"


class AuditTail(Protocol):
    def tail(self, n: int | None = None) -> list[dict[str, Any]]:
        """The last `n` records (the adapter's configured default when None)."""
        ...


def _tail(ctx: ReadContext, params: Mapping[str, str]) -> str:
    records = ctx.ports.audit.tail()
    return strict_json.dumps({"records": records, "count": len(records)}, sort_keys=True)


# Every principal's records: humans and operators only (configs/policy.yaml reads.audit_tail);
# agents read their own through resources/audit_own.py.
SPECS = (
    ResourceSpec(TAIL_URI, "audit_tail", "Audit chain tail", "Every principal's latest audit records (decisions and outcomes, hashes and ids only), oldest first. For humans and operators (configs/policy.yaml reads.audit_tail); an agent reads its own in mlgate://audit/mine.",
                 _tail, requires=("audit",)),
)  # fmt: skip
