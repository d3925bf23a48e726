"""A stdio server started as a human or operator (`MLGATE_ROLE`): the role must come with that
person's own token, or anyone with a shell could read sealed figures and pass as a second human.

The refusals run `mlgate serve` in-process through server.cli.main (it refuses before serving);
the token holder's calls go through the real in-memory MCP client, as a stdio server's do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.audit import read_tail
from server.auth import TokenStore
from server.cli import main
from server.credentials import TokenHolder, stdio_holder
from server.identity import UNAUTHENTICATED
from server.ports import build_ports
from server.settings import Settings
from tests.credentials import approver, issue, use_token
from tests.security.test_approvals import approval_file, pending

pytestmark = pytest.mark.anyio


def _serve(workspace: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> int:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return main(["serve", "--workspace", str(workspace)])


async def _call_as(settings: Settings, holder: TokenHolder, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    ports = build_ports(settings)
    try:
        async with Client(build_server(settings, ports, local=holder)) as client:
            result = await client.call_tool(tool, arguments)
    finally:
        ports.audit.close()
    return result.is_error, result.structured_content or {}


def test_a_stdio_server_started_as_human_without_a_token_refuses_to_start(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("MLGATE_TOKEN", raising=False)
    assert _serve(workspace, monkeypatch, MLGATE_ROLE="human", MLGATE_PRINCIPAL="risk-officer") == 2
    err = capsys.readouterr().err
    assert "started as human needs that human's own token in MLGATE_TOKEN" in err and "none is set" in err


def test_a_stdio_server_started_as_human_refuses_a_token_the_store_does_not_vouch_for(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    assert _serve(workspace, monkeypatch, MLGATE_ROLE="human", MLGATE_TOKEN="mlgate_" + "f" * 43) == 2
    assert "the one given is not valid" in capsys.readouterr().err


def test_a_stdio_server_started_as_human_refuses_an_operator_token(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_token(monkeypatch, settings.state_dir, "ops-2", "operator")
    assert _serve(workspace, monkeypatch, MLGATE_ROLE="human") == 2
    assert "token 'ops-2' has role operator, not human" in capsys.readouterr().err


def test_a_stdio_server_refuses_a_principal_name_its_token_does_not_bear(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """One person with one token cannot request as 'bob' and then approve as themselves."""
    use_token(monkeypatch, settings.state_dir, "alice")
    assert _serve(workspace, monkeypatch, MLGATE_ROLE="human", MLGATE_PRINCIPAL="bob") == 2
    err = capsys.readouterr().err
    assert "MLGATE_PRINCIPAL names 'bob' but the token belongs to 'alice'" in err


def test_the_holder_acts_for_the_tokens_name_with_its_credential(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use_token(monkeypatch, settings.state_dir, "alice")
    principal = stdio_holder(settings.state_dir, "human", None, UNAUTHENTICATED)()
    assert principal == approver(settings.state_dir, "alice")
    assert principal.credential and principal.credential.startswith("alice:")


async def test_a_humans_stdio_server_decides_an_approval_with_her_token(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    approval_id = (await pending(settings))["approval_id"]
    use_token(monkeypatch, settings.state_dir, "risk-officer")
    holder = stdio_holder(settings.state_dir, "human", "risk-officer", UNAUTHENTICATED)
    denied, result = await _call_as(settings, holder, "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert not denied, result
    stored = json.loads(approval_file(settings, approval_id).read_text())
    assert (stored["status"], stored["decided_by"]) == ("approved", "risk-officer")
    assert read_tail(settings.audit_path, 1)[0]["credential"].startswith("risk-officer:")


async def test_a_revoked_token_acts_for_no_human_from_the_next_call(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    approval_id = (await pending(settings))["approval_id"]
    use_token(monkeypatch, settings.state_dir, "risk-officer")
    holder = stdio_holder(settings.state_dir, "human", None, UNAUTHENTICATED)
    assert holder().name == "risk-officer"
    TokenStore(settings.state_dir).revoke("risk-officer", issuer=approver(settings.state_dir, "root-op", "operator"))
    denied, result = await _call_as(settings, holder, "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert denied and result["rule_id"] == "role.agents_cannot_approve"
    record = read_tail(settings.audit_path, 1)[0]
    assert (record["principal"], record["role"]) == ("unauthenticated", "agent")
    assert json.loads(approval_file(settings, approval_id).read_text())["status"] == "pending"


async def test_an_agents_stdio_server_still_refuses_an_approver_token_in_its_environment(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLGATE_TOKEN", issue(settings.state_dir, "risk-officer"))
    monkeypatch.delenv("MLGATE_ROLE", raising=False)
    assert _serve(workspace, monkeypatch) == 2
    assert "MLGATE_TOKEN holds the human token of 'risk-officer'" in capsys.readouterr().err
