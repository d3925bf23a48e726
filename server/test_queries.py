"""Test-set query ledger: how often each dataset's sealed test rows were measured or revealed.

Every query is an audit record (kind "test_query": dataset, purpose, run, principal and the new
total), so the count is recorded in the hash chain; the per-dataset totals are also kept in
`<state>/test_queries.json` (written atomically under a lock) for quick reads by the model card.
`count_from_audit` recomputes the totals from the chain, to check the file against it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from server.files import locked, write_atomic

CONTENT_HASH = re.compile(r"^[0-9a-f]{64}\Z")
RECORD_KIND = "test_query"


class TestQueryLedger:
    def __init__(self, state_dir: Path, audit: Any) -> None:
        self._path = Path(state_dir) / "test_queries.json"
        self._lock = Path(state_dir) / "test_queries.lock"
        self._audit = audit

    def _read(self) -> dict[str, int]:
        try:
            found = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        return {k: int(v) for k, v in found.items() if CONTENT_HASH.match(k) and isinstance(v, int)} if isinstance(found, dict) else {}

    def count(self, dataset_hash: str) -> int:
        return self._read().get(dataset_hash, 0)

    def record(self, dataset_hash: str, *, purpose: str, run_id: str, principal: str) -> int:
        """Count one query of the dataset's test rows; returns the new total.

        Raises ValueError for a malformed content hash; audit failures propagate (no query goes
        uncounted: the audit record is written before the file)."""
        if not CONTENT_HASH.match(dataset_hash):
            raise ValueError("a test-set query names a dataset by its 64-hex content hash")
        with locked(self._lock):
            totals = self._read()
            total = totals.get(dataset_hash, 0) + 1
            if self._audit is not None:
                self._audit.append({"kind": RECORD_KIND, "dataset_hash": dataset_hash, "purpose": purpose, "run_id": run_id, "principal": principal, "test_queries": total})
            totals[dataset_hash] = total
            write_atomic(self._path, json.dumps(totals, sort_keys=True).encode(), 0o600)
        return total


def count_from_audit(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Per-dataset query totals as the audit chain records them."""
    totals: dict[str, int] = {}
    for record in records:
        if record.get("kind") == RECORD_KIND and isinstance(record.get("dataset_hash"), str):
            totals[record["dataset_hash"]] = totals.get(record["dataset_hash"], 0) + 1
    return totals
