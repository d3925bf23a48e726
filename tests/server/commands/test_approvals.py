"""`mlgate approvals list|approve|deny` through server.cli.main: the mistakes people make at a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main


@pytest.mark.parametrize("command", [["approvals", "list"], ["approvals", "approve", "apr-000000000000"], ["approvals", "deny", "apr-000000000000"]])
def test_a_mistyped_workspace_exits_2_with_what_to_do_instead_of_an_empty_list(tmp_path: Path, capsys, command: list[str]) -> None:
    assert main([*command, "--workspace", str(tmp_path / "typo")]) == 2
    captured = capsys.readouterr()
    assert "no pending approvals" not in captured.out
    assert "what to do: pass --workspace DIR of a workspace made by `mlgate init DIR`" in captured.err
    assert not (tmp_path / "typo").exists()
