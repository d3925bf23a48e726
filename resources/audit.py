"""The audit tail resource: the last records of the audit chain, read-only.

Reading the tail is not verification; `mlgate audit verify` checks the whole chain.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import anyio

TAIL_URI = "mlgate://audit/tail"


class AuditTail(Protocol):
    def tail(self, n: int | None = None) -> list[dict[str, Any]]:
        """The last `n` records (the adapter's configured default when None)."""
        ...


def register(server: Any, ports: Any) -> None:
    audit: AuditTail | None = ports.audit
    if audit is None:
        return

    @server.resource(
        TAIL_URI,
        name="audit_tail",
        title="Audit chain tail",
        description="The latest audit records (decisions and outcomes, hashes and ids only), oldest first.",
        mime_type="application/json",
    )
    async def audit_tail() -> str:
        records = await anyio.to_thread.run_sync(audit.tail)
        return json.dumps({"records": records, "count": len(records)}, sort_keys=True)
