"""The hardened loader: every hazard refused with rule input.document, its kind and its line."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from server.safe_yaml import check_value, dump_document, load_document
from tools.errors import InvalidInput

LIMITS = {"max_bytes": 4096, "max_depth": 6, "max_nodes": 200}
BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"


def refused(text: str | bytes, limits: dict[str, Any] = LIMITS) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        load_document(text, limits, name="doc")
    assert info.value.rule_id == "input.document" and info.value.reason.startswith("doc: ") and info.value.remediation
    return info.value


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        ("a: 1\nb: !!python/object/apply:os.system ['true']\n", "tag", 2),
        ("a: !!python/name:os.system\n", "tag", 1),
        ("a: !custom 1\n", "tag", 1),
        ("a: !!binary aGk=\n", "tag", 1),
        ("a: !!timestamp 2020-01-01\n", "tag", 1),
        ("a: !!set {x: null}\n", "tag", 1),
        ("a: 1\nb: &anchor 2\n", "anchor &anchor", 2),
        (BILLION_LAUGHS, "anchor &a", 1),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", "duplicate key 'c'", 4),
        ('{"a": 1, "a": 2}', "duplicate key 'a'", 1),
        ("base: {x: 1}\nother:\n  <<: {target: y}\n", "merge key", 3),
        ("a: 1\n---\nb: 2\n", "more than one document", 2),
        ("- 1\n- 2\n", "must be a mapping", 1),
        ("just text\n", "must be a mapping", 1),
        ("", "must be a mapping", None),
        ("a: [1, 2\n", "not valid YAML", None),
        ("1: one\n", "not a string", 1),
        ("? [a, b]\n: 1\n", "not a scalar", 1),
        ("flag: yes\n", "ambiguous", 1),
        ("flag: Off\n", "ambiguous", 1),
        ("mode: 0755\n", "ambiguous", 1),
        ("n: 1_000\n", "ambiguous", 1),
        ("t: 1:30\n", "ambiguous", 1),
        ("b: 0b101\n", "ambiguous", 1),
        ("v: =\n", "special meaning", 1),
        ("x: !!bool yes\n", "not a valid !!bool", 1),
        ("x: !!int 1.5\n", "not a valid !!int", 1),
        ("x: !!map [1]\n", "on a sequence", 1),
    ],
)
def test_hazardous_yaml_is_refused_with_its_kind_and_line(text: str, problem: str, line: int | None) -> None:
    error = refused(text)
    assert problem in error.reason
    if line is not None:
        assert f"line {line}" in error.reason


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    bomb = BILLION_LAUGHS + "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i > 0 else "x"] * 9) + "]\n" for i in range(12))
    assert "anchor" in refused(bomb, {**LIMITS, "max_bytes": 65536}).reason


def test_document_over_the_byte_cap_is_refused_before_parsing() -> None:
    error = refused("a: " + "x" * 5000)
    assert "over the 4096 byte cap" in error.reason


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    assert "nesting deeper than 6" in refused("a: " + "[" * 7 + "]" * 7).reason
    assert load_document("a: " + "[" * 5 + "]" * 5, LIMITS) == {"a": [[[[[]]]]]}


def test_too_many_nodes_are_refused() -> None:
    assert "more than 200 nodes" in refused("a: [" + ", ".join(["1"] * 300) + "]").reason


def test_bytes_that_are_not_text_are_refused() -> None:
    assert "not readable as YAML text" in refused(b"a: \xff\xfe\x00").reason
    assert "not readable" in refused("a: \x07bell").reason


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("x: 1e-3", 0.001),
        ("x: 1.5e3", 1500.0),
        ("x: 0x1F", 31),
        ("x: 0o17", 15),
        ("x: -7", -7),
        ("x: true", True),
        ("x: FALSE", False),
        ("x: ~", None),
        ("x:", None),
        ("x: null", None),
        ("x: 2020-01-01", "2020-01-01"),
        ("x: 'yes'", "yes"),
        ('x: "0755"', "0755"),
        ('x: !!str 1', "1"),
        ('x: !!int "3"', 3),
        ('x: !!float "3"', 3.0),
        ("x: [a, 'b', 2]", ["a", "b", 2]),
        ("x: hello world", "hello world"),
    ],
)
def test_plain_and_tagged_scalars_follow_the_yaml_12_core_schema(text: str, value: Any) -> None:
    assert load_document(text, LIMITS) == {"x": value}


def test_special_floats_load_and_the_schema_decides_about_them() -> None:
    loaded = load_document("a: .inf\nb: -.Inf\nc: .NaN", LIMITS)
    assert loaded["a"] == math.inf and loaded["b"] == -math.inf and math.isnan(loaded["c"])


def test_json_documents_load_as_yaml() -> None:
    document = {"data": {"target": "default", "positive_class": 1}, "metrics": ["roc_auc"], "lr": 0.001, "on": True}
    assert load_document(json.dumps(document), LIMITS) == document


def test_dump_reads_back_to_the_same_values_including_strings_that_look_like_other_types() -> None:
    document = {"a": "1e-3", "b": "yes", "c": "0o17", "d": 1e-5, "e": "2020-01-01", "f": [1, 2], "g": "", "h": None, "i": "null", "j": "a\tb", "k": "x\ny", "l": "010", "m": True, "n": "True", "o": {"p": [{"q": 1}]}}
    assert load_document(dump_document(document), LIMITS) == document


def test_dump_keeps_key_order_a_header_and_short_lists_on_one_line() -> None:
    text = dump_document({"z": 1, "a": {"metrics": ["roc_auc", "f1"]}}, header="# why\n")
    assert text == "# why\nz: 1\na:\n  metrics: [roc_auc, f1]\n"


def test_check_value_applies_the_same_limits_to_parsed_json() -> None:
    check_value({"a": [1, {"b": 2}]}, LIMITS)
    deep: Any = 1
    for _ in range(7):
        deep = [deep]
    with pytest.raises(InvalidInput, match="nesting deeper than 6"):
        check_value({"a": deep}, LIMITS)
    with pytest.raises(InvalidInput, match="more than 200 nodes"):
        check_value({"a": list(range(300))}, LIMITS)
    with pytest.raises(InvalidInput, match="not a string"):
        check_value({"a": {1: 2}}, LIMITS)


TOKEN = "ghp_" + "A1b2C3d4E5" * 4


@pytest.mark.parametrize(
    ("text", "problem", "line"),
    [
        (f"a: 1\n{TOKEN}: 2\n{TOKEN}: 3\n", "duplicate key", 3),
        (f'{{"{TOKEN}": 1, "{TOKEN}": 2}}', "duplicate key", 1),
        (f"a: &{TOKEN} 1\n", "anchor &", 1),
        (f"a: 1\nb: *{TOKEN}\n", "alias *", 2),
        (f"a: !<tag:{TOKEN}> 1\n", "tag", 1),
    ],
)
def test_refusals_hide_credential_looking_text_and_keep_the_kind_and_line(text: str, problem: str, line: int) -> None:
    error = refused(text)
    assert TOKEN not in error.reason and "ghp_" not in error.reason
    assert problem in error.reason and "looks like a credential" in error.reason and error.reason.endswith(f"at line {line}")


@pytest.mark.parametrize("text", ['a: "\\ud800"\n', '"\\udcff": 1\n', '"k\\ud800": 1\n"k\\ud800": 2\n', 'a: !!str "x\\ude00"\n'])
def test_a_lone_surrogate_escape_is_refused_in_text_every_reply_can_carry(text: str) -> None:
    error = refused(text)
    assert "lone surrogate" in error.reason and error.reason.endswith("at line 1")
    error.reason.encode("utf-8")


def test_an_escaped_surrogate_pair_loads_as_its_character() -> None:
    assert load_document('{"a": "\\ud83d\\ude00", "\\ud83d\\ude00": 1}', LIMITS) == {"a": "\U0001f600", "\U0001f600": 1}


# --- characters a reviewer cannot see are written as escapes ------------------------------------

INVISIBLE = {
    "zero_width_space": ("loan\u200bstatus", "loan\\u200bstatus"),
    "zero_width_joiner": ("a\u200db", "a\\u200db"),
    "word_joiner": ("a\u2060b", "a\\u2060b"),
    "byte_order_mark": ("\ufeffincome", "\\ufeffincome"),
    "right_to_left_override": ("txt.\u202eexe", "txt.\\u202eexe"),
    "isolate": ("a\u2066b\u2069", "a\\u2066b\\u2069"),
    "right_to_left_mark": ("a\u200fb", "a\\u200fb"),
    "soft_hyphen": ("in\u00adcome", "in\\xadcome"),
    "tag_character": ("loan\U000e0041", "loan\\U000e0041"),
    "no_break_space": ("a\u00a0b", "a\\xa0b"),
    "line_separator": ("a\u2028b", "a\\u2028b"),
    "tab": ("a\tb", "a\\tb"),
}


@pytest.mark.parametrize(("text", "escaped"), INVISIBLE.values(), ids=INVISIBLE.keys())
def test_dump_writes_an_invisible_or_format_character_as_an_escape_that_reads_back_exactly(text: str, escaped: str) -> None:
    document = {"features": {"exclude": ["income", text]}, text: "key"}
    written = dump_document(document)
    assert f'"{escaped}"' in written and all(ch.isprintable() or ch == "\n" for ch in written)
    assert load_document(written, LIMITS) == document


def test_dump_leaves_visible_unicode_as_it_is() -> None:
    document = {"exclude": ["ｌｏａｎ_ｓｔａｔｕｓ", "e\u0301tat", "état", "🙂", "שם"], "note": "line one\nline two"}
    written = dump_document(document)
    assert "ｌｏａｎ_ｓｔａｔｕｓ" in written and "e\u0301tat" in written and "🙂" in written and "\\u" not in written
    assert load_document(written, LIMITS) == document


def test_a_string_with_a_newline_and_an_invisible_character_is_one_escaped_line() -> None:
    written = dump_document({"why": "first\u200b line\nsecond line"})
    assert written == 'why: "first\\u200b line\\nsecond line"\n'
    assert load_document(written, LIMITS) == {"why": "first\u200b line\nsecond line"}
