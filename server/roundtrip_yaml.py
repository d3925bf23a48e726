"""Server writes of configs/experiment.yaml and configs/reasoning.yaml that keep the file's comments.

The operator's comments (why a split, what a field means) are part of the config. The new document
is merged into the file's own round-trip tree (ruamel.yaml): unchanged keys keep their comments and
layout, changed values are replaced in place, removed keys go, new keys are appended. Client input
is never parsed here: the hardened loader (server/safe_yaml.py) parsed and checked it already. The
current file is an agent's to write (DESIGN §9), so the round-trip parser only reads it once the
hardened loader accepted it (ruamel's composer recurses once per nesting level: a file nested a few
thousand levels deep would crash the write and, as a flow list, parse for seconds). The output is
only used when the hardened loader reads it back as exactly the new document; otherwise (or when
the current file cannot be round-tripped) the plain rendering is written instead. Both renderings
write a character a reviewer cannot see (zero-width, bidi and other format characters, controls)
as an escape in a double-quoted scalar (server/safe_yaml.py ShownCharacters), including one the
file already held raw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.emitter import Emitter
from ruamel.yaml.error import YAMLError

from server import safe_yaml


class ShownEmitter(safe_yaml.ShownCharacters, Emitter):
    """ruamel.yaml's emitter writing unseen characters as escapes (server/safe_yaml.py)."""


def showing(yaml: YAML) -> YAML:
    """`yaml` (a ruamel.yaml round-trip instance) writing unseen characters as escapes."""
    yaml.Emitter = ShownEmitter
    return yaml


def _yaml() -> YAML:
    loader = showing(YAML(typ="rt"))
    loader.allow_duplicate_keys = False
    loader.default_flow_style = False
    loader.width = 100
    loader.indent(mapping=2, sequence=4, offset=2)
    return loader


def _same(current: Any, new: Any) -> bool:
    return type(current) is type(new) and current == new


def _merge(current: Any, new: Any) -> Any:
    """`new`, reusing `current`'s round-trip nodes (and their comments) wherever they agree."""
    if isinstance(current, CommentedMap) and isinstance(new, Mapping):
        for key in [k for k in current if k not in new]:
            del current[key]
        for key, value in new.items():
            if key in current and isinstance(current[key], (CommentedMap, CommentedSeq)):
                current[key] = _merge(current[key], value)
            elif key not in current or not _same(current[key], value):
                current[key] = value
        return current
    if isinstance(current, CommentedSeq) and isinstance(new, list) and len(current) == len(new):
        for index, value in enumerate(new):
            if not _same(current[index], value):
                current[index] = _merge(current[index], value)
        return current
    return new


def _roundtrip(original: bytes, document: Mapping[str, Any]) -> str | None:
    loader = _yaml()
    try:
        tree = loader.load(original.decode("utf-8"))
    except (YAMLError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(tree, CommentedMap):
        return None
    buffer = io.StringIO()
    loader.dump(_merge(tree, dict(document)), buffer)
    return buffer.getvalue()


def _hardened(text: bytes | str, limits: Mapping[str, Any]) -> dict[str, Any] | None:
    """`text` as the hardened loader reads it (size, depth, node count, no aliases or tags); None
    when it refuses it."""
    try:
        return safe_yaml.load_document(text, limits, name="config")
    except Exception:  # noqa: BLE001 - anything the hardened loader refuses is neither round-tripped nor written
        return None


def render_over(original: bytes | None, document: Mapping[str, Any], limits: Mapping[str, Any], *, header: str = "") -> str:
    """`document` as YAML text keeping `original`'s comments; the plain rendering (with `header`)
    when there is no original, it cannot be round-tripped, or the result would not read back as
    `document` through the hardened loader."""
    plain = safe_yaml.dump_document(document, header=header)
    if not original or _hardened(original, limits) is None:
        return plain
    text = _roundtrip(original, document)
    return text if text is not None and _hardened(text, limits) == dict(document) else plain
