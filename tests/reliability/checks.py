"""What every answer to a fuzzed call must satisfy, shared by the tests and bench/reliability.py."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "', "site-packages", "/root/", ".py\", line")


def problems(result: Any, private_paths: Iterable[str]) -> list[str]:
    """Why an MCP tool result is not an acceptable answer: an error without rule_id/reason, a
    traceback, or a server-side path in its text."""
    found = []
    text = " ".join(getattr(block, "text", "") for block in (result.content or []))
    payload = result.structured_content or {}
    if result.is_error and not (isinstance(payload.get("rule_id"), str) and isinstance(payload.get("reason"), str)):
        found.append(f"error without rule_id/reason: {text[:200]}")
    body = text + json.dumps(payload, default=str)
    found += [f"traceback marker {m!r}" for m in TRACEBACK_MARKERS if m in body]
    found += [f"server path {p!r}" for p in private_paths if p and p in body]
    return found
