"""Hardened YAML/JSON loading for anything a client or a workspace file supplies.

(Minimal version; the full hardening — duplicate keys, aliases, tags, depth — lives here.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from tools.errors import InvalidInput


def load_document(data: bytes | str, limits: Mapping[str, Any], *, name: str = "document") -> dict[str, Any]:
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > int(limits["max_bytes"]):
        raise InvalidInput(f"{name} is {len(raw)} bytes, over the {limits['max_bytes']} byte cap", "submit a smaller document", rule_id="input.document")
    loaded = yaml.safe_load(raw)
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{name} must be a mapping", "submit a YAML mapping", rule_id="input.document")
    return loaded
