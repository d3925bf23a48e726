"""JSON text that every client can parse.

Python's json writes NaN and the infinities (an undefined metric, the range of an empty column) as
bare `NaN`/`Infinity`: not JSON (RFC 8259), so JSON.parse refuses the whole text. They are written
as null here, as the SDK already writes them in structured content.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None (dicts, lists, tuples walked)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """json.dumps of finite(value); `allow_nan=False` makes a number that slipped through an error."""
    return json.dumps(finite(value), allow_nan=False, **options)
