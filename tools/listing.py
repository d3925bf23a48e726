"""Lists of names or values inside a refusal or warning: the first few, then how many more, so the
text stays short whatever the data holds."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

LIMIT = 5


def first_few(items: Sequence[Any], show: Callable[[Any], str] = json.dumps, limit: int = LIMIT) -> str:
    """`"a", "b" and 3 more`: each item through `show` (JSON escapes by default: names may hold any character)."""
    listed = ", ".join(show(item) for item in items[:limit])
    return listed + (f" and {len(items) - limit} more" if len(items) > limit else "")
