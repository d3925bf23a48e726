"""decide_approval over MCP (human and agent principals) and `mlgate approvals` at the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.cli import main
from server.settings import Settings, load_settings

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


async def test_a_human_principal_approves_over_mcp_and_the_agent_then_applies_the_change(settings: Settings, workspace: Path) -> None:
    approval_id = await pending_approval(settings)
    is_error, decided = await call(human(workspace), "decide_approval", {"approval_id": approval_id, "decision": "approve", "note": "retention project"})
    assert not is_error and decided["status"] == "approved" and decided["decided_by"] == "alice"
    is_error, applied = await call(settings, "propose_config_change", {"changes": {"data.target": "churn"}, "reasoning": REASONING})
    assert not is_error and applied["approval_id"] == approval_id and status(settings, approval_id) == "consumed"
    decision = [r for r in audit(settings) if r["tool"] == "decide_approval" and r["kind"] == "outcome"][0]
    assert decision["principal"] == "alice" and decision["role"] == "human" and decision["approval_id"] == approval_id


async def test_an_agent_is_denied_by_the_role_rule_and_the_approval_stays_pending(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    is_error, result = await call(settings, "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert is_error and result["rule_id"] == "role.agents_cannot_approve" and "mlgate approvals approve" in result["remediation"]
    assert status(settings, approval_id) == "pending"
    assert audit(settings)[-1]["denied_by"] == ["role.agents_cannot_approve", "approval.four_eyes"]


async def test_an_agent_dry_run_is_denied_too(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    is_error, result = await call(settings, "decide_approval", {"approval_id": approval_id, "decision": "approve", "dry_run": True})
    assert is_error and result["rule_id"] == "role.agents_cannot_approve" and result["dry_run"] is True


async def test_a_human_dry_run_previews_without_deciding(settings: Settings, workspace: Path) -> None:
    approval_id = await pending_approval(settings)
    is_error, result = await call(human(workspace), "decide_approval", {"approval_id": approval_id, "decision": "deny", "dry_run": True})
    assert not is_error and result["would_set_status"] == "denied" and result["protected_fields"][0]["path"] == "data.target"
    assert status(settings, approval_id) == "pending"


async def test_decisions_are_final(settings: Settings, workspace: Path) -> None:
    approval_id = await pending_approval(settings)
    operator = human(workspace, "operator")
    await call(operator, "decide_approval", {"approval_id": approval_id, "decision": "deny"})
    is_error, result = await call(operator, "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert is_error and result["rule_id"] == "approval.is_pending" and status(settings, approval_id) == "denied"


@pytest.mark.parametrize(
    ("arguments", "rule_id"),
    [
        ({"approval_id": "apr-0123456789ab", "decision": "approve"}, "approval.is_pending"),
        ({"approval_id": "../../audit", "decision": "approve"}, "input.schema"),
        ({"approval_id": "apr-0123456789ab", "decision": "yes"}, "input.schema"),
        ({"approval_id": "apr-0123456789ab", "decision": "approve", "confirm": True}, "input.schema"),
    ],
)
async def test_bad_decisions_are_refused(workspace: Path, arguments: dict[str, Any], rule_id: str) -> None:
    is_error, result = await call(human(workspace), "decide_approval", arguments)
    assert is_error and result["rule_id"] == rule_id


# --- the CLI -----------------------------------------------------------------------------------


async def test_cli_lists_pending_approvals_with_their_fields(settings: Settings, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli("approvals", "list", "--workspace", str(workspace)) == 0
    assert "no pending approvals" in capsys.readouterr().out
    approval_id = await pending_approval(settings)
    assert await cli("approvals", "list", "--workspace", str(workspace)) == 0
    out = capsys.readouterr().out
    assert approval_id in out and "pending" in out and 'data.target "default" -> "churn"' in out and "local-agent (agent)" in out


async def test_cli_approve_and_deny_are_audited_as_cli_calls(settings: Settings, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = await pending_approval(settings)
    assert await cli("approvals", "deny", first, "--workspace", str(workspace), "--as", "bob", "--note", "not this quarter") == 0
    assert status(settings, first) == "denied"
    record = [r for r in audit(settings) if r["tool"] == "decide_approval"][-1]
    assert record["transport"] == "cli" and record["principal"] == "bob" and record["status"] == "ok"
    assert await cli("approvals", "list", "--all", "--workspace", str(workspace)) == 0
    assert "denied" in capsys.readouterr().out


async def test_cli_refuses_unknown_and_already_decided_approvals(settings: Settings, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli("approvals", "approve", "apr-0123456789ab", "--workspace", str(workspace), "--as", "bob") == 2
    assert "missing" in capsys.readouterr().err
    approval_id = await pending_approval(settings)
    assert await cli("approvals", "approve", approval_id, "--workspace", str(workspace), "--as", "bob") == 0
    assert await cli("approvals", "deny", approval_id, "--workspace", str(workspace), "--as", "bob") == 2
    assert "decisions are final" in capsys.readouterr().err and status(settings, approval_id) == "approved"


def test_cli_refuses_a_name_that_could_forge_log_lines(workspace: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["approvals", "approve", "apr-0123456789ab", "--workspace", str(workspace), "--as", "alice\tfake"])
    assert info.value.code == 2


async def test_a_human_cannot_approve_a_change_requested_under_their_own_name(settings: Settings) -> None:
    approval_id = await pending_approval(settings)
    exit_code = await anyio.to_thread.run_sync(main, ["approvals", "approve", approval_id, "--workspace", str(settings.workspace), "--as", settings.local_principal])
    assert exit_code == 2 and status(settings, approval_id) == "pending"
    assert audit(settings)[-1]["denied_by"] == ["approval.four_eyes"]
