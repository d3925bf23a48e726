"""`mlgate token create|list|revoke` through server.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.auth import TokenStore
from server.cli import main
from server.credentials import TOKEN_ENV
from server.settings import load_settings


def _create(workspace: Path, name: str, role: str, capsys) -> str:
    assert main(["token", "create", "--name", name, "--role", role, "--workspace", str(workspace)]) == 0
    return capsys.readouterr().out.strip()


def test_create_prints_the_token_once_on_stdout_and_it_verifies(workspace: Path, capsys) -> None:
    token = _create(workspace, "remote-agent", "agent", capsys)
    record = TokenStore(load_settings(workspace).state_dir).match(token)
    assert record is not None and (record.name, record.role) == ("remote-agent", "agent")


def test_list_shows_names_roles_and_times_but_never_secrets_or_hashes(workspace: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _create(workspace, "remote-agent", "agent", capsys)
    monkeypatch.setenv(TOKEN_ENV, _create(workspace, "root-op", "operator", capsys))
    _create(workspace, "risk-officer", "human", capsys)
    assert main(["token", "list", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["name"], r["role"], r["vouched"]) for r in rows] == [("remote-agent", "agent", True), ("root-op", "operator", True), ("risk-officer", "human", True)]
    assert all(sorted(r) == ["created", "name", "role", "vouched"] for r in rows)
    assert token not in out


def test_the_first_operator_token_bootstraps_and_later_ones_need_an_operator(workspace: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    operator = _create(workspace, "root-op", "operator", capsys)
    assert main(["token", "create", "--name", "mallory", "--role", "operator", "--workspace", str(workspace)]) == 2
    assert "credential of role operator" in capsys.readouterr().err
    monkeypatch.setenv(TOKEN_ENV, _create(workspace, "agent-1", "agent", capsys))
    assert main(["token", "create", "--name", "mallory", "--role", "human", "--workspace", str(workspace)]) == 2
    monkeypatch.setenv(TOKEN_ENV, operator)
    assert _create(workspace, "alice", "human", capsys).startswith("mlgate_")
    created = [json.loads(line) for line in (load_settings(workspace).audit_path).read_text().splitlines()]
    assert [(r["token"]["name"], r["principal"], r["bootstrap"]) for r in created if r["kind"] == "token_created"] == [
        ("root-op", "unauthenticated", True), ("agent-1", "unauthenticated", False), ("alice", "root-op", False),
    ]


def test_revoking_a_human_token_needs_an_operator_token(workspace: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, _create(workspace, "root-op", "operator", capsys))
    human = _create(workspace, "alice", "human", capsys)
    monkeypatch.setenv(TOKEN_ENV, human)
    assert main(["token", "revoke", "alice", "--workspace", str(workspace)]) == 2
    assert TokenStore(load_settings(workspace).state_dir).match(human) is not None


def test_revoke_removes_the_token(workspace: Path, capsys) -> None:
    token = _create(workspace, "remote-agent", "agent", capsys)
    assert main(["token", "revoke", "remote-agent", "--workspace", str(workspace)]) == 0
    assert TokenStore(load_settings(workspace).state_dir).match(token) is None


def test_revoking_an_unknown_token_exits_2_with_what_to_do(workspace: Path, capsys) -> None:
    assert main(["token", "revoke", "nobody", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "no token named 'nobody'" in err and "mlgate token list" in err


def test_a_second_token_with_the_same_name_exits_2(workspace: Path, capsys) -> None:
    _create(workspace, "remote-agent", "agent", capsys)
    assert main(["token", "create", "--name", "remote-agent", "--role", "operator", "--workspace", str(workspace)]) == 2
    assert "exists" in capsys.readouterr().err


def test_an_unknown_role_is_rejected_by_the_parser(workspace: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--name", "x", "--role", "admin", "--workspace", str(workspace)])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_token_create_outside_a_workspace_is_refused_and_creates_no_state(tmp_path, capsys) -> None:
    from server.cli import main  # noqa: PLC0415

    assert main(["token", "create", "--workspace", str(tmp_path), "--name", "codex-1", "--role", "agent"]) == 2
    assert "not an mlgate workspace" in capsys.readouterr().err
    assert not (tmp_path / ".mlgate").exists()


def test_a_token_pasted_as_the_name_is_refused_never_echoed_and_never_stored(workspace: Path, capsys) -> None:
    token = _create(workspace, "root-op", "operator", capsys)
    for argv in (["token", "create", "--name", token, "--role", "agent"], ["token", "revoke", token]):
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--workspace", str(workspace)])
        captured = capsys.readouterr()
        assert exited.value.code == 2 and "that is a token, not a name" in captured.err
        assert token not in captured.out + captured.err
    assert token not in (load_settings(workspace).state_dir / "tokens.json").read_text()
    assert token not in load_settings(workspace).audit_path.read_text()


@pytest.mark.parametrize("command", [["token", "list"], ["token", "revoke", "alice"]])
def test_a_mistyped_or_file_workspace_exits_2_with_what_to_do_and_creates_no_state(tmp_path: Path, capsys, command: list[str]) -> None:
    (tmp_path / "loans.csv").write_text("a,b\n1,2\n")
    for given in (tmp_path / "typo", tmp_path / "loans.csv", tmp_path):
        assert main([*command, "--workspace", str(given)]) == 2
        assert "not an mlgate workspace" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loans.csv"]
