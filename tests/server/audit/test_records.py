"""The record format, reading a chain from its end, and the audit options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.audit import AuditOptions, canonical, read_tail, record_hash
from server.audit.records import loads, parse_line, read_anchor
from tests.server.audit.helpers import build_chain, lines
from tools.errors import IntegrityError


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.jsonl"


def test_canonical_form_sorts_keys_without_spaces_and_escapes_non_ascii() -> None:
    assert canonical({"b": 1, "a": ["é", None]}) == b'{"a":["\\u00e9",null],"b":1}'


def test_record_hash_ignores_only_the_hash_field() -> None:
    record = {"seq": 0, "time": "t", "prev": "p", "kind": "x"}
    assert record_hash({**record, "hash": "anything"}) == record_hash(record)
    assert record_hash({**record, "kind": "y"}) != record_hash(record)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[1,2]\n", "the line is not a JSON object"),
        (b'{"seq":"0","time":"t","prev":"p","hash":"h"}\n', "the line lacks seq, time, prev or hash"),
        (b'{"hash":"h","prev":"p","seq":0,"time":"t","x":NaN}\n', "the line holds values that are not canonical JSON"),
    ],
    ids=["not-object", "seq-as-string", "nan"],
)
def test_parse_line_names_what_is_wrong(raw: bytes, problem: str) -> None:
    assert parse_line(raw)[1] == problem


def test_tail_skips_a_torn_last_line_and_marks_an_unreadable_one(path: Path) -> None:
    build_chain(path, 3)
    content = lines(path)
    path.write_bytes(content[0] + b"{garbage\n" + content[2] + b'{"partial')
    tail = read_tail(path, 5)
    assert [r.get("seq") for r in tail] == [0, None, 2]
    assert tail[1]["unreadable"] is True and "garbage" not in json.dumps(tail[1])


@pytest.mark.parametrize("config", [{"fsync_every": 0}, {"tail_max": -1}, {"lock_timeout_ms": "5"}, {"fsync_interval_ms": 1.5}])
def test_options_from_config_refuse_values_that_are_not_positive_integers(config: dict) -> None:
    with pytest.raises(ValueError) as caught:
        AuditOptions.from_config(config)
    assert next(iter(config)) in str(caught.value)


def test_options_from_config_take_known_keys() -> None:
    options = AuditOptions.from_config({"fsync_every": 4, "tail_default": 7, "unrelated": 1})
    assert (options.fsync_every, options.tail_default, options.tail_max) == (4, 7, AuditOptions().tail_max)


@pytest.mark.parametrize(
    "anchor",
    [b'{"hash":"x","offset":1e999,"seq":0}', b'{"hash":"x","offset":10,"seq":1e999}', b'{"hash":"x","offset":-5,"seq":0}',
     b'{"hash":"x","offset":10,"seq":"3"}', b'{"hash":"x","offset":10,"seq":true}', b'{"hash":"x","offset":0,"seq":4}',
     b"[" * 200_000],
    ids=["infinite-offset", "infinite-seq", "negative-offset", "text-seq", "boolean-seq", "record-without-bytes", "nested-too-deep"],
)
def test_an_anchor_with_numbers_no_writer_wrote_is_unreadable_not_a_crash(tmp_path: Path, anchor: bytes) -> None:
    path = tmp_path / "audit.head"
    path.write_bytes(anchor + b"\n")
    with pytest.raises(IntegrityError) as refused:
        read_anchor(path)
    assert refused.value.rule_id == "audit.anchor_unreadable"


def test_a_line_nested_past_the_recursion_limit_is_not_json_to_every_reader() -> None:
    raw = b"[" * 200_000 + b"\n"
    assert parse_line(raw) == (None, "the line is not valid JSON")
    with pytest.raises(ValueError):
        loads(raw)
