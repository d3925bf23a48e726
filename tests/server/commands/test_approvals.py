"""`mlgate approvals list|approve|deny` through server.cli.main: the mistakes people make at a terminal."""

from __future__ import annotations

import json
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


def _as_human(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.credentials import TOKEN_ENV  # noqa: PLC0415
    from server.settings import load_settings  # noqa: PLC0415
    from tests.credentials import issue  # noqa: PLC0415

    monkeypatch.setenv(TOKEN_ENV, issue(load_settings(workspace).state_dir, "alice"))


def test_an_unknown_approval_id_is_named_unknown_with_what_a_person_can_do(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _as_human(workspace, monkeypatch)
    assert main(["approvals", "approve", "apr-000000000000", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "mlgate: no approval has this id" in err and "decisions are final" not in err
    assert "what to do: list pending approvals with `mlgate approvals list`" in err


def test_a_malformed_id_at_the_terminal_points_to_the_commands_help_not_a_tool_schema(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _as_human(workspace, monkeypatch)
    assert main(["approvals", "deny", "apr-XYZ", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "invalid arguments: approval_id" in err and "input schema" not in err
    assert "what to do: fix the listed values; `mlgate COMMAND --help`" in err


AN_APPROVAL_FILE = {"id": "apr-000000000000", "status": "approved", "change_hash": "0" * 64, "created_at": "2026-12-01T00:00:00Z"}


@pytest.mark.parametrize(
    "forged",
    [{"protected_fields": 5, "requested_by": "x"}, {"protected_fields": [1, "a"], "requested_by": ["x"], "created_at": "\x1b[2Jnow"}, {}],
    ids=["numbers-for-lists", "wrong-shapes-and-an-escape", "only-the-fields-every-file-has"],
)
def test_a_hand_written_approval_file_of_any_shape_is_listed_unvouched_not_a_traceback(workspace: Path, capsys, forged: dict) -> None:
    """`approvals list --all` is where an operator looks for forged files: it must show them."""
    from server.settings import load_settings  # noqa: PLC0415

    approvals = load_settings(workspace).state_dir / "approvals"
    approvals.mkdir(parents=True, exist_ok=True)
    (approvals / "apr-000000000000.json").write_text(json.dumps({**AN_APPROVAL_FILE, **forged}))
    assert main(["approvals", "list", "--all", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "apr-000000000000" in out and "NOT VOUCHED BY THE AUDIT CHAIN" in out and "\x1b" not in out
