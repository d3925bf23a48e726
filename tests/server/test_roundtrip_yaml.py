"""Server writes of experiment.yaml keep the operator's comments (server/roundtrip_yaml.py)."""

from __future__ import annotations

import copy
from pathlib import Path

from server import safe_yaml
from server.roundtrip_yaml import render_over

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
