"""decide_approval over MCP (human and agent principals) and `mlgate approvals` at the terminal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.cli import main
from server.settings import Settings, load_settings
from tests.credentials import issue, use_token
from tests.e2e.transports import mlgate_http, streamable_http

pytestmark = pytest.mark.anyio

REASONING = {
    "hypothesis_category": "baseline",
    "change_description": "Predict churn instead of default for the retention team",
    "expected_effect": "a churn model whose roc_auc is comparable to the default model",
}


def human(workspace: Path, role: str = "human") -> Settings:
    return load_settings(workspace, transport="memory", local_principal="alice", local_role=role)


async def call(settings: Settings, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    async with Client(build_server(settings)) as client:
        result = await client.call_tool(tool, arguments)
    return result.is_error, result.structured_content


async def pending_approval(settings: Settings) -> str:
    is_error, result = await call(settings, "propose_config_change", {"changes": {"data.target": "churn"}, "reasoning": REASONING})
    assert is_error and result["approval_status"] == "pending"
    return result["approval_id"]


def status(settings: Settings, approval_id: str) -> str:
    return json.loads((settings.state_dir / "approvals" / f"{approval_id}.json").read_text())["status"]


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_path.read_text().splitlines() if line.strip()]


async def cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(main, list(argv))


async def http_call(settings: Settings, token: str, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The call over streamable HTTP with a bearer token, as a remote human's client makes it."""
    with mlgate_http(settings) as url:
        async with streamable_http(url, token) as client:
            result = await client.call_tool(tool, arguments)
    return result.is_error, result.structured_content


async def test_a_human_with_a_token_approves_over_http_and_the_agent_then_applies_the_change(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    token = issue(settings.state_dir, "alice")
    with anyio.fail_after(60):
        is_error, decided = await http_call(settings, token, "decide_approval", {"approval_id": approval_id, "decision": "approve", "note": "retention project"})
    assert not is_error and decided["status"] == "approved" and decided["decided_by"] == "alice"
    is_error, applied = await call(settings, "propose_config_change", {"changes": {"data.target": "churn"}, "reasoning": REASONING})
    assert not is_error and applied["approval_id"] == approval_id and status(settings, approval_id) == "consumed"
    decision = [r for r in audit(settings) if r.get("tool") == "decide_approval" and r["kind"] == "outcome"][0]
    assert decision["principal"] == "alice" and decision["role"] == "human" and decision["approval_id"] == approval_id
    assert decision["credential"] == decided["credential"] == f"alice:{hashlib.sha256(token.encode()).hexdigest()[:12]}"


async def test_an_agent_is_denied_by_the_role_rule_and_the_approval_stays_pending(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    is_error, result = await call(settings, "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert is_error and result["rule_id"] == "role.agents_cannot_approve" and "mlgate approvals approve" in result["remediation"]
    assert status(settings, approval_id) == "pending"
    assert audit(settings)[-1]["denied_by"] == ["role.agents_cannot_approve", "role.approver_authenticated", "approval.four_eyes"]


async def test_an_agent_dry_run_is_denied_too(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    is_error, result = await call(settings, "decide_approval", {"approval_id": approval_id, "decision": "approve", "dry_run": True})
    assert is_error and result["rule_id"] == "role.agents_cannot_approve" and result["dry_run"] is True


@pytest.mark.parametrize("role", ["human", "operator"])
async def test_a_server_started_as_a_human_cannot_decide_without_a_token(settings: Settings, workspace: Path, role: str) -> None:
    approval_id = await pending_approval(settings)
    is_error, result = await call(human(workspace, role), "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert is_error and result["rule_id"] == "role.approver_authenticated" and status(settings, approval_id) == "pending"


async def test_a_human_dry_run_over_http_previews_without_deciding(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    with anyio.fail_after(60):
        is_error, result = await http_call(settings, issue(settings.state_dir, "alice"), "decide_approval", {"approval_id": approval_id, "decision": "deny", "dry_run": True})
    assert not is_error and result["would_set_status"] == "denied" and result["protected_fields"][0]["path"] == "data.target"
    assert status(settings, approval_id) == "pending"


async def test_decisions_are_final(settings: Settings, workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    approval_id = await pending_approval(settings)
    use_token(monkeypatch, settings.state_dir, "root-op", "operator")
    assert await cli("approvals", "deny", approval_id, "--workspace", str(workspace)) == 0
    assert await cli("approvals", "approve", approval_id, "--workspace", str(workspace)) == 2
    assert "decisions are final" in capsys.readouterr().err and status(settings, approval_id) == "denied"


@pytest.mark.parametrize(
    "arguments",
    [
        {"approval_id": "../../audit", "decision": "approve"},
        {"approval_id": "apr-0123456789ab", "decision": "yes"},
        {"approval_id": "apr-0123456789ab", "decision": "approve", "confirm": True},
    ],
)
async def test_bad_decisions_are_refused(workspace: Path, arguments: dict[str, Any]) -> None:
    is_error, result = await call(human(workspace), "decide_approval", arguments)
    assert is_error and result["rule_id"] == "input.schema"


# --- the CLI -----------------------------------------------------------------------------------


async def test_cli_lists_pending_approvals_with_their_fields(settings: Settings, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli("approvals", "list", "--workspace", str(workspace)) == 0
    assert "no pending approvals" in capsys.readouterr().out
    approval_id = await pending_approval(settings)
    assert await cli("approvals", "list", "--workspace", str(workspace)) == 0
    out = capsys.readouterr().out
    assert approval_id in out and "pending" in out and 'data.target "default" -> "churn"' in out and "local-agent (agent)" in out


async def test_cli_approve_and_deny_are_audited_as_cli_calls_naming_the_credential(settings: Settings, workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    first = await pending_approval(settings)
    token = use_token(monkeypatch, settings.state_dir, "bob")
    assert await cli("approvals", "deny", first, "--workspace", str(workspace), "--note", "not this quarter") == 0
    assert status(settings, first) == "denied"
    record = [r for r in audit(settings) if r.get("tool") == "decide_approval"][-1]
    assert record["transport"] == "cli" and record["principal"] == "bob" and record["role"] == "human" and record["status"] == "ok"
    assert record["credential"] == "bob:" + hashlib.sha256(token.encode()).hexdigest()[:12]
    assert token not in settings.audit_path.read_text()
    assert await cli("approvals", "list", "--all", "--workspace", str(workspace)) == 0
    assert "denied" in capsys.readouterr().out


async def test_cli_refuses_unknown_and_already_decided_approvals(settings: Settings, workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_token(monkeypatch, settings.state_dir, "bob")
    assert await cli("approvals", "approve", "apr-0123456789ab", "--workspace", str(workspace)) == 2
    assert "no approval has this id" in capsys.readouterr().err
    approval_id = await pending_approval(settings)
    assert await cli("approvals", "approve", approval_id, "--workspace", str(workspace)) == 0
    assert await cli("approvals", "deny", approval_id, "--workspace", str(workspace)) == 2
    assert "decisions are final" in capsys.readouterr().err and status(settings, approval_id) == "approved"


@pytest.mark.parametrize("flag", [["--as", "risk-officer"], ["--role", "operator"], ["--token", "mlgate_x"]])
def test_cli_takes_no_identity_or_token_from_its_arguments(workspace: Path, flag: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["approvals", "approve", "apr-0123456789ab", "--workspace", str(workspace), *flag])
    assert info.value.code == 2


async def test_a_human_cannot_approve_a_change_requested_under_their_own_name(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    approval_id = await pending_approval(settings)
    use_token(monkeypatch, settings.state_dir, settings.local_principal)
    exit_code = await cli("approvals", "approve", approval_id, "--workspace", str(settings.workspace))
    assert exit_code == 2 and status(settings, approval_id) == "pending"
    assert audit(settings)[-1]["denied_by"] == ["approval.four_eyes"]
