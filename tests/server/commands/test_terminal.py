"""Agent-written text reaches the operator's terminal escaped."""

from __future__ import annotations

import pytest

from server.commands.terminal import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J\x1b[1;31mALL GATES PASSED", "\\x1b[2J\\x1b[1;31mALL GATES PASSED"),
        ("title\x07\x00", "title\\x07\\x00"),
        ("two\nlines\r", "two\\nlines\\r"),
        ("\u202eevil", "\\u202eevil"),
        ("loan\u200bstatus", "loan\\u200bstatus"),
    ],
)
def test_control_and_format_characters_are_printed_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_plain_text_in_any_script_is_left_as_it_is() -> None:
    assert printable("Défaut de crédit 信用 0.734 run abc") == "Défaut de crédit 信用 0.734 run abc"
    assert printable(None) == "None" and printable(3) == "3"
