"""Long lists of column names, named compactly: bureau data has thousands of attributes whose names
differ only in a number (`bureau_attribute_0131_count_of_enquiries_last_12m`), and a result that
names each of 2 000 such columns is over 100 KB: more than an agent's client reads from one tool
call (Claude Code's default cap is 25 000 tokens).

Up to MAX_LISTED names a list is given as it is. A longer one is given as the names that fit no
family, in their order, plus the families of names that differ only in one run of digits:

    {"prefix": "bureau_attribute_", "suffix": "_count_of_enquiries_last_12m", "numbers": ["0000-1999"], "count": 2000}

Each name of a family is prefix + number + suffix for each number in `numbers`; "a-b" stands for
every integer from a to b written with as many digits as a (zero-padded). The names listed and the
families' names are exactly the names of the list, each once. Should the names that fit no family
still be more than MAX_LISTED, the first MAX_LISTED are listed and the rest counted (`omitted`).
Pure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

MAX_LISTED = 200  # names one result lists one by one
MIN_FAMILY = 3  # fewer names sharing a prefix and suffix are listed one by one
DIGITS = re.compile(r"[0-9]+")
Key = tuple[str, str]


def _splits(name: str) -> list[tuple[Key, str]]:
    """((prefix, suffix), digits) for each run of digits in the name."""
    return [((name[: m.start()], name[m.end() :]), m.group()) for m in DIGITS.finditer(name)]


def _assign(names: Sequence[str]) -> dict[str, tuple[Key, str] | None]:
    """Each name's family (the one of its digit runs most names share), or None."""
    sizes = Counter(key for name in names for key, _ in _splits(name))
    chosen: dict[str, tuple[Key, str] | None] = {}
    for name in names:
        options = [(sizes[key], index, key, digits) for index, (key, digits) in enumerate(_splits(name))]
        best = max(options, default=None)
        chosen[name] = (best[2], best[3]) if best is not None and best[0] >= MIN_FAMILY else None
    return chosen


def families(names: Sequence[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """(names in no family, in their order; families in the order of their first name)."""
    chosen = _assign(names)
    members: dict[Key, list[str]] = {}
    for name in names:
        if chosen[name] is not None:
            key, digits = chosen[name]
            members.setdefault(key, []).append(digits)
    kept = {key: numbers for key, numbers in members.items() if len(numbers) >= MIN_FAMILY}
    loose = [name for name in names if chosen[name] is None or chosen[name][0] not in kept]
    grouped = [{"prefix": key[0], "suffix": key[1], "numbers": number_ranges(numbers), "count": len(numbers)} for key, numbers in kept.items()]
    return loose, grouped


def number_ranges(numbers: Sequence[str]) -> list[str]:
    """Digit strings as ranges "a-b" of consecutive integers of one width, else single numbers."""
    ordered = sorted(numbers, key=lambda d: (len(d), int(d)))
    ranges: list[list[str]] = []
    for digits in ordered:
        last = ranges[-1][-1] if ranges else None
        if last is not None and len(last) == len(digits) and int(digits) == int(last) + 1:
            ranges[-1].append(digits)
        else:
            ranges.append([digits])
    return [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in ranges]


def expand(family: dict[str, Any]) -> list[str]:
    """The names a family stands for (the inverse of `families`, for readers and tests)."""
    names = []
    for part in family["numbers"]:
        first, _, last = part.partition("-")
        names += [f"{family['prefix']}{n:0{len(first)}d}{family['suffix']}" for n in range(int(first), int(last or first) + 1)]
    return names


def compact(field: str, names: Sequence[str]) -> dict[str, Any]:
    """{field: names} for a short list; for a long one {field: names in no family (at most
    MAX_LISTED), field_families, field_total, and field_omitted when names were left out}."""
    if len(names) <= MAX_LISTED:
        return {field: list(names)}
    loose, grouped = families(names)
    shown = {field: loose[:MAX_LISTED], f"{field}_families": grouped, f"{field}_total": len(names)}
    return shown | ({f"{field}_omitted": len(loose) - MAX_LISTED} if len(loose) > MAX_LISTED else {})
