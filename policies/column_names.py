"""The one rule a dataset column's name obeys: at import (server/cas_import.py refuses the dataset)
and wherever a config names a column (tools/experiment_schema.py, features.exclude). One rule on
both sides: every column the import keeps can be named there, and nothing named there can be a
column the import refused.

A column name travels into text that people and agents read: tool results, column reports, model
cards (markdown), MLflow params and tags, YAML configs and their git diffs, terminals. Refused are
the characters that can forge or hide text there:

- control characters (Unicode Cc: C0 such as tab, newline and escape, DEL, C1 such as NEL): a
  newline starts a forged line, an escape sequence rewrites a terminal;
- the line and paragraph separators U+2028, U+2029: line breaks to YAML, JavaScript and editors;
- the Unicode Bidi_Control characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069):
  they reorder the text shown around them (Trojan Source, CVE-2021-42574), so a reviewer reads
  one name or sentence while another is there;
- tag characters (U+E0000-U+E007F): invisible, yet a language model reads them as ASCII, so a
  name could carry instructions nobody sees;
- interlinear annotation characters (U+FFF9-U+FFFB): renderers that honour them hide text;
- lone surrogates: no UTF-8 text (reply, record, file) can carry one.

Any other Unicode is a name, zero-width characters (U+200B-U+200D, U+2060, U+FEFF) and full-width
letters included: they hide nothing but themselves. A copy of the label spelled with them is the
look-alike rule's (policies/columns.py, data.no_label_or_time_look_alike), and the YAML mlgate
writes shows them as escapes (server/safe_yaml.py). Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

MAX_CHARS = 256  # the training spec's bound on a column name (training/spec.py ColumnName)
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ANNOTATIONS = frozenset("\ufff9\ufffa\ufffb")
REFUSED_KINDS = "control characters, line or paragraph separators, bidi controls, tag or interlinear annotation characters"


def refused_character(ch: str) -> str | None:
    """What the character `ch` is when the rule refuses it (`a bidi control, ...`), else None."""
    category = unicodedata.category(ch)
    if category == "Cc":
        return "a control character: it can break a line or drive a terminal"
    if category in ("Zl", "Zp"):
        return "a line or paragraph separator: many readers break the line there"
    if ch in BIDI_CONTROLS:
        return "a bidi control: it reorders the text shown around it"
    if 0xE0000 <= ord(ch) <= 0xE007F:
        return "a tag character: invisible, yet read as text by language models"
    if ch in ANNOTATIONS:
        return "an interlinear annotation character: it can hide text"
    if category == "Cs":
        return "a lone surrogate: no UTF-8 text can carry it"
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a column's name (`it holds U+202E (a bidi control: ...)`), or None."""
    if not name:
        return "it is empty"
    if len(name) > MAX_CHARS:
        return f"it has {len(name)} characters, over {MAX_CHARS}"
    for ch in name:
        what = refused_character(ch)
        if what:
            return f"it holds U+{ord(ch):04X} ({what})"
    return None


def refused_names(names: Iterable[str]) -> list[tuple[int, str, str]]:
    """(position from 1, name, problem) of each name the rule refuses, in order."""
    found = []
    for position, name in enumerate(names, start=1):
        problem = name_problem(name)
        if problem:
            found.append((position, name, problem))
    return found
