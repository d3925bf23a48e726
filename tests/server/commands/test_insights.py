"""`mlgate insights` tables as a person reads them at the terminal."""

from __future__ import annotations

from server.commands.insights import format_table


def test_a_table_shows_floats_to_six_significant_digits_and_keeps_counts_and_text() -> None:
    rows = [{"run_id": "5151bc50", "metric_delta": 0.00441481481481476, "runs": 5, "cost": 12.0, "outcome": None}]
    header, row = format_table(rows).splitlines()
    assert header.split() == ["run_id", "metric_delta", "runs", "cost", "outcome"]
    assert row.split() == ["5151bc50", "0.00441481", "5", "12"]


def test_an_empty_table_says_there_are_no_runs() -> None:
    assert format_table([]) == "(no runs)"


def test_agent_text_in_a_cell_is_printed_escaped_never_as_terminal_escapes() -> None:
    rows = [{"run_id": "5151bc50", "change_description": "tune \x1b[2J\x1b]0;owned\x07 \u202eevil"}]
    table = format_table(rows)
    assert "\x1b" not in table and "\x07" not in table and "\u202e" not in table
    assert "tune \\x1b[2J\\x1b]0;owned\\x07 \\u202eevil" in table
