"""The caller's own audit records: what an agent may read of the audit chain.

The full tail (resources/audit.py) shows every principal's calls, credentials and argument hashes,
so only humans and operators read it; any role reads its own records here (same name and role),
newest last. Reading is not verification; `mlgate audit verify` checks the chain.
"""

from __future__ import annotations

from collections.abc import Mapping

from resources.base import ReadContext, ResourceSpec
from tools import strict_json

MINE_URI = "mlgate://audit/mine"
WINDOW = 1000  # records scanned, newest first; the chain clamps this to its tail_max
SHOWN = 50  # own records returned at most


def own_records(ctx: ReadContext) -> list[dict]:
    principal = ctx.principal
    records = ctx.ports.audit.tail(WINDOW)
    mine = [r for r in records if r.get("principal") == principal.name and r.get("role") == principal.role]
    return mine[-SHOWN:]


def _mine(ctx: ReadContext, params: Mapping[str, str]) -> str:
    records = own_records(ctx)
    return strict_json.dumps({"principal": ctx.principal.name, "records": records, "count": len(records)}, sort_keys=True)


SPECS = (
    ResourceSpec(MINE_URI, "audit_mine", "My audit records", f"Your own latest audit records (at most {SHOWN}, oldest first): decisions, outcomes and reads, hashes and ids only.",
                 _mine, requires=("audit",)),
)  # fmt: skip
