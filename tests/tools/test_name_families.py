"""Long lists of column names named by family: exact (every name once, nothing else) and short."""

from __future__ import annotations

import json

import pytest

from tools.name_families import MAX_LISTED, compact, expand, families, number_ranges

BUREAU = [f"bureau_attribute_{i:04d}_count_of_enquiries_last_12m" for i in range(2000)]


def named(shown: dict, field: str) -> list[str]:
    """Every name a compact listing stands for."""
    return [*shown[field], *(name for family in shown.get(f"{field}_families", []) for name in expand(family))]


@pytest.mark.parametrize(
    "names",
    [
        BUREAU + ["income", "age", "x1", "x2", "x3", "y7"],
        [f"v{i}" for i in range(1, 300, 2)] + [f"v{i:03d}" for i in range(100)],  # unpadded and padded, gaps
        [f"m{i}_w{j}" for i in range(15) for j in range(15)],  # two runs of digits in each name
        [f"{{a}}{i}" for i in range(250)] + ["{a}-1", "a-b"],  # braces and dashes in names
        [f"col_{i}" for i in range(150)] + ["z1", "z2", "y1", "q9"] + [f"tail{i}" for i in range(60)],
    ],
)
def test_a_long_list_is_named_exactly_each_name_once(names: list[str]) -> None:
    shown = compact("columns", names)
    assert sorted(named(shown, "columns")) == sorted(names) and shown["columns_total"] == len(names)
    assert len(named(shown, "columns")) == len(set(names))


def test_two_thousand_bureau_attributes_are_one_family_in_a_few_hundred_bytes() -> None:
    shown = compact("columns", ["income", *BUREAU, "age"])
    assert shown["columns"] == ["income", "age"]
    assert shown["columns_families"] == [{"prefix": "bureau_attribute_", "suffix": "_count_of_enquiries_last_12m", "numbers": ["0000-1999"], "count": 2000}]
    assert len(json.dumps(shown)) < 300 < len(json.dumps(BUREAU)) // 300


def test_a_list_up_to_the_limit_is_given_as_it_is() -> None:
    names = BUREAU[:MAX_LISTED]
    assert compact("feature_columns", names) == {"feature_columns": names}


def test_names_in_no_family_past_the_limit_are_counted_not_listed() -> None:
    names = [f"attr_{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}" for i in range(MAX_LISTED + 50)]
    shown = compact("columns", names)
    assert shown["columns"] == names[:MAX_LISTED] and shown["columns_omitted"] == 50 and shown["columns_families"] == []


def test_a_family_of_fewer_than_three_names_is_listed_name_by_name() -> None:
    loose, grouped = families(["a1", "a2", "b1", "b2", "b3"])
    assert loose == ["a1", "a2"] and grouped == [{"prefix": "b", "suffix": "", "numbers": ["1-3"], "count": 3}]


def test_number_ranges_keep_each_width_apart() -> None:
    assert number_ranges(["10", "8", "9", "11", "08", "007", "3"]) == ["3", "8-9", "08", "10-11", "007"]
