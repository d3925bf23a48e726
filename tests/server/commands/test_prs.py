"""`mlgate prs` lines: a PR record is a state file an agent with a shell can edit."""

from __future__ import annotations

from server.commands.prs import _line


def test_a_pr_title_edited_to_hold_terminal_escapes_is_printed_escaped() -> None:
    record = {"id": "local#1", "state": "open", "branch": "agent/x", "commit": "a" * 40, "run_id": "b" * 32, "title": "ok\x1b[1A\x1b[2Kmerged by alice\u202e"}
    line = _line(record)
    assert "\x1b" not in line and "\u202e" not in line and line.endswith("ok\\x1b[1A\\x1b[2Kmerged by alice\\u202e")
