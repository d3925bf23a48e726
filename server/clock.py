"""The clock adapter: the only place the server reads the time."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def iso(self) -> str:
        return self.now().isoformat(timespec="microseconds").replace("+00:00", "Z")
