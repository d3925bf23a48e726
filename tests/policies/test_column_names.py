"""The one column-name rule of the import and of features.exclude (policies/column_names.py): what
can forge or hide text is refused, any other Unicode (zero-width, full-width) is a name."""

from __future__ import annotations

import pytest

from policies.column_names import MAX_CHARS, name_problem, refused_names

ALLOWED = {
    "plain": "loan_status",
    "spaces_and_punctuation": "Loan Status (2024) - %",
    "zero_width_space": "loan\u200b_status",
    "zero_width_joiner_and_word_joiner": "a\u200d\u2060b",
    "byte_order_mark": "\ufeffloan_status",
    "full_width_letters": "ｌｏａｎ_ｓｔａｔｕｓ",
    "combining_accent": "e\u0301tat",
    "hebrew_letters": "\u05e9\u05dd",
    "emoji": "🙂",
    "longest": "x" * MAX_CHARS,
}


@pytest.mark.parametrize("name", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_name_that_hides_nothing_but_itself_is_allowed(name: str) -> None:
    assert name_problem(name) is None


REFUSED = {
    "empty": ("", "it is empty"),
    "over_long": ("x" * (MAX_CHARS + 1), f"it has {MAX_CHARS + 1} characters, over {MAX_CHARS}"),
    "tab": ("loan_status\t", "U+0009 (a control character"),
    "newline": ("a\nb", "U+000A (a control character"),
    "terminal_escape": ("a\x1b[31m", "U+001B (a control character"),
    "delete": ("a\x7f", "U+007F (a control character"),
    "c1_next_line": ("a\x85", "U+0085 (a control character"),
    "line_separator": ("a\u2028b", "U+2028 (a line or paragraph separator"),
    "paragraph_separator": ("a\u2029b", "U+2029 (a line or paragraph separator"),
    "right_to_left_override": ("txt.\u202eexe", "U+202E (a bidi control"),
    "left_to_right_embedding": ("\u202aa", "U+202A (a bidi control"),
    "right_to_left_isolate": ("a\u2067b\u2069", "U+2067 (a bidi control"),
    "pop_directional_isolate": ("a\u2069", "U+2069 (a bidi control"),
    "right_to_left_mark": ("a\u200f-b", "U+200F (a bidi control"),
    "arabic_letter_mark": ("a\u061c", "U+061C (a bidi control"),
    "tag_character": ("loan\U000e0041", "U+E0041 (a tag character"),
    "interlinear_annotation": ("a\ufff9b\ufffac\ufffb", "U+FFF9 (an interlinear annotation character"),
    "lone_surrogate": ("a\ud800", "U+D800 (a lone surrogate"),
}


@pytest.mark.parametrize(("name", "says"), REFUSED.values(), ids=REFUSED.keys())
def test_a_name_that_can_forge_or_hide_text_is_refused_with_the_character(name: str, says: str) -> None:
    problem = name_problem(name)
    assert problem is not None and says in problem


def test_refused_names_gives_each_refused_column_by_its_position_from_one() -> None:
    found = refused_names(["income", "a\tb", "ｌoan", "c\u202ed"])
    assert [(position, name) for position, name, _ in found] == [(2, "a\tb"), (4, "c\u202ed")]
    assert refused_names(["income", "loan\u200bstatus"]) == []
