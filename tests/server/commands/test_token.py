"""`mlgate token create|list|revoke` through server.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.auth import TokenStore
from server.cli import main
from server.settings import load_settings


def _create(workspace: Path, name: str, role: str, capsys) -> str:
    assert main(["token", "create", "--name", name, "--role", role, "--workspace", str(workspace)]) == 0
    return capsys.readouterr().out.strip()


def test_create_prints_the_token_once_on_stdout_and_it_verifies(tmp_path: Path, capsys) -> None:
    token = _create(tmp_path, "remote-agent", "agent", capsys)
    record = TokenStore(load_settings(tmp_path).state_dir).match(token)
    assert record is not None and (record.name, record.role) == ("remote-agent", "agent")


def test_list_shows_names_roles_and_times_but_never_secrets_or_hashes(tmp_path: Path, capsys) -> None:
    token = _create(tmp_path, "remote-agent", "agent", capsys)
    _create(tmp_path, "risk-officer", "human", capsys)
    assert main(["token", "list", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["name"], r["role"]) for r in rows] == [("remote-agent", "agent"), ("risk-officer", "human")]
    assert all(sorted(r) == ["created", "name", "role"] for r in rows)
    assert token not in out


def test_revoke_removes_the_token(tmp_path: Path, capsys) -> None:
    token = _create(tmp_path, "remote-agent", "agent", capsys)
    assert main(["token", "revoke", "remote-agent", "--workspace", str(tmp_path)]) == 0
    assert TokenStore(load_settings(tmp_path).state_dir).match(token) is None


def test_revoking_an_unknown_token_exits_2_with_what_to_do(tmp_path: Path, capsys) -> None:
    assert main(["token", "revoke", "nobody", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no token named 'nobody'" in err and "mlgate token list" in err


def test_a_second_token_with_the_same_name_exits_2(tmp_path: Path, capsys) -> None:
    _create(tmp_path, "remote-agent", "agent", capsys)
    assert main(["token", "create", "--name", "remote-agent", "--role", "operator", "--workspace", str(tmp_path)]) == 2
    assert "exists" in capsys.readouterr().err


def test_an_unknown_role_is_rejected_by_the_parser(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--name", "x", "--role", "admin", "--workspace", str(tmp_path)])
    assert exited.value.code == 2 and "invalid choice" in capsys.readouterr().err
