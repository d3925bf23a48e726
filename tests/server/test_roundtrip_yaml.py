"""Server writes of experiment.yaml keep the operator's comments (server/roundtrip_yaml.py)."""

from __future__ import annotations

import copy
import io
from pathlib import Path

from ruamel.yaml import YAML

from server import safe_yaml
from server.roundtrip_yaml import render_over, showing

TEMPLATE = Path(__file__).resolve().parents[2] / "configs/template/configs/experiment.yaml"
LIMITS = {"max_bytes": 65536, "max_depth": 12, "max_nodes": 5000}


def _template() -> tuple[bytes, dict]:
    original = TEMPLATE.read_bytes()
    return original, safe_yaml.load_document(original, LIMITS, name="experiment.yaml")


def test_a_changed_value_keeps_every_comment_of_the_file() -> None:
    original, document = _template()
    changed = copy.deepcopy(document)
    changed["model"]["params"]["max_depth"] = 6
    changed["evaluation"]["metrics"] = ["roc_auc", "brier"]
    text = render_over(original, changed, LIMITS, header="# header\n")
    assert "# latest 20% of rows: the held-out test set (protected)" in text
    assert "# content hash of a dataset under data/shadow/" in text and text.startswith("# What to run.")
    assert safe_yaml.load_document(text, LIMITS, name="x") == changed


def test_removed_and_added_keys_read_back_as_the_new_document() -> None:
    original, document = _template()
    changed = copy.deepcopy(document)
    del changed["model"]["params"]["learning_rate"]
    changed["model"]["params"]["subsample"] = 0.8
    changed["features"]["exclude"] = ["on", "010", "yes"]  # YAML 1.1 look-alikes stay strings
    text = render_over(original, changed, LIMITS)
    assert safe_yaml.load_document(text, LIMITS, name="x") == changed and "learning_rate" not in text


def test_a_file_that_cannot_be_round_tripped_gets_the_plain_rendering() -> None:
    _, document = _template()
    text = render_over(b"- not\n- a mapping\n", document, LIMITS, header="# header\n")
    assert text.startswith("# header\n") and safe_yaml.load_document(text, LIMITS, name="x") == document
    assert render_over(None, document, LIMITS, header="# h\n").startswith("# h\n")


UNSEEN = ["loan\u200bstatus", "\ufeffincome", "txt.\u202eexe", "a\u2066b\u2069", "a\u00a0b", "grade\U000e0041"]


def test_invisible_and_bidi_characters_are_written_as_escapes_and_read_back_exactly() -> None:
    original, document = _template()
    changed = copy.deepcopy(document)
    changed["features"]["exclude"] = [*UNSEEN, "ｌｏａｎ_ｓｔａｔｕｓ"]
    text = render_over(original, changed, LIMITS)
    assert "# content hash of a dataset under data/shadow/" in text  # the round trip, not the plain rendering
    for escaped in ("loan\\u200bstatus", "\\ufeffincome", "txt.\\u202eexe", "a\\u2066b\\u2069", "a\\xa0b", "grade\\U000e0041"):
        assert f'"{escaped}"' in text
    assert all(ch.isprintable() or ch == "\n" for ch in text) and "ｌｏａｎ_ｓｔａｔｕｓ" in text
    assert safe_yaml.load_document(text, LIMITS, name="x") == changed


def test_a_raw_invisible_character_already_in_the_file_is_escaped_when_it_is_written_again() -> None:
    original, document = _template()
    raw = original.replace(b"exclude: []", 'exclude: ["loan\u200bstatus"]'.encode())
    assert raw != original and "\u200b" in raw.decode()
    changed = copy.deepcopy(document)
    changed["features"]["exclude"] = ["loan\u200bstatus"]
    changed["model"]["params"]["max_depth"] = 6
    text = render_over(raw, changed, LIMITS)
    assert '"loan\\u200bstatus"' in text and "\u200b" not in text and text.startswith("# What to run.")
    assert safe_yaml.load_document(text, LIMITS, name="x") == changed


def test_a_round_trip_instance_that_keeps_quotes_still_shows_what_a_quoted_value_hides() -> None:
    """What `mlgate standards set` writes (server/standards_set.py): quotes kept, unseen characters escaped."""
    yaml = showing(YAML(typ="rt"))
    yaml.preserve_quotes = True
    tree = yaml.load("label:\n  target: 'loan\u202estatus'  # the label\n  time_column: \"issue\u200bd\"\n")
    out = io.StringIO()
    yaml.dump(tree, out)
    text = out.getvalue()
    assert 'target: "loan\\u202estatus"' in text and "# the label" in text and 'time_column: "issue\\u200bd"' in text
    assert safe_yaml.load_document(text, LIMITS, name="x") == {"label": {"target": "loan\u202estatus", "time_column": "issue\u200bd"}}


def test_a_string_yaml_1_1_would_read_as_another_type_is_quoted_so_it_reads_back() -> None:
    document = {"positive_class": "Yes", "on": "off", "mode": "0777", "name": "plain", "count": 3, "flag": True}
    original = b"# header\npositive_class: 1  # the label value\non: 1\nmode: 1\nname: x\ncount: 1\nflag: false\n"
    original = original.replace(b"on: 1", b"'on': 1")
    text = render_over(original, document, LIMITS)
    assert "# the label value" in text and "positive_class: 'Yes'" in text and "'on': 'off'" in text and "name: plain" in text
    assert safe_yaml.load_document(text, LIMITS) == document
