"""`mlgate audit search`: the records of an intact chain that match a query.

An auditor asks which records concern one run, one principal or one tool, or which calls were
denied in a week. The answer is evidence only if the chain holding it is intact, and a chain
rewritten whole shows only where its anchor is checked, near its end. So the search walks the
chain twice: a first walk verifies all of it (server/audit/verify.py) and a damaged chain yields
no records at all; a second, verifying again, hands out the matches up to the head the first
walk verified. Both walks stream: memory does not grow with the chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from server.audit.verify import VerifyReport, verify


@dataclass(frozen=True)
class AuditQuery:
    """Conditions a record must all meet; an empty query matches every record."""

    kinds: frozenset[str] = frozenset()
    fields: tuple[tuple[str, str], ...] = ()  # top-level field == text (numbers as JSON)
    denied: bool = False  # a refused call or read, or a denied approval
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.kinds and record.get("kind") not in self.kinds:
            return False
        if any(field_text(record.get(key)) != value for key, value in self.fields):
            return False
        if self.denied and record.get("decision") != "deny":
            return False
        return self._in_window(record.get("time"))

    def _in_window(self, text: Any) -> bool:
        if self.since is None and self.until is None:
            return True
        when = parse_time(text) if isinstance(text, str) else None
        if when is None:
            return False  # a record without a time cannot be placed in a window
        return (self.since is None or when >= self.since) and (self.until is None or when < self.until)


class SearchReport(NamedTuple):
    chain: VerifyReport
    matched: int


def search(path: Path | str, query: AuditQuery, emit: Callable[[dict], None]) -> SearchReport:
    """Hands `emit` the matching records of the chain at `path`, oldest first; none when damaged."""
    first = verify(path)
    if not first.ok:
        return SearchReport(first, 0)
    matched = 0

    def found(record: dict) -> None:
        nonlocal matched
        if record["seq"] <= first.head_seq and query.matches(record):
            matched += 1
            emit(record)

    second = verify(path, on_record=found)
    return SearchReport(second if not second.ok else first, matched)


def field_text(value: Any) -> str | None:
    """A field's value as the text a query names it by; None for lists, mappings and absence."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def parse_time(text: str) -> datetime | None:
    """An ISO date or time; one without a zone is UTC. None when it is neither, or when its UTC
    time falls outside the years 1-9999 (0001-01-01T00:00+01:00)."""
    try:
        when = datetime.fromisoformat(text)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
