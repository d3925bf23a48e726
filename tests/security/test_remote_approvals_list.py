"""What `mlgate approvals list` shows the human who decides is what the approval asks.

The requester's name comes from the caller: a token name (letters, digits, '.', '_', '-') over
HTTP, but whatever MLGATE_PRINCIPAL holds for a stdio server the agent starts. A name carrying
terminal control sequences (conceal, cursor moves) or line breaks must not hide the protected change
or print a made-up one on the approver's terminal. Real workspace, real server, real CLI.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.cli import main
from server.credentials import TOKEN_ENV
from server.settings import load_settings

REASONING = {
    "hypothesis_category": "feature_engineering",
    "change_description": "Raise the held-out share for a steadier estimate.",
    "expected_effect": "Narrower confidence intervals on the test metric.",
}
CONCEAL = "\x1b[8m"
FAKE_LINE = "\n    model.params.max_depth 3 -> 4"


async def _request_approval(workspace: Path, requester: str) -> str:
    settings = load_settings(workspace, transport="memory", local_principal=requester)
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("propose_config_change", {"changes": {"split.test_size": 0.3}, "reasoning": REASONING})
    assert result.structured_content["rule_id"] == "config.protected_fields", result.structured_content
    return result.structured_content["approval_id"]


def _listing(workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["approvals", "list", "--workspace", str(workspace)]) == 0
    return capsys.readouterr().out


def test_a_requester_name_with_control_characters_cannot_hide_or_forge_the_change_shown(workspace: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    approval_id = anyio.run(_request_approval, workspace, f"bot (agent){FAKE_LINE}{CONCEAL}")
    out = _listing(workspace, capsys, monkeypatch)
    assert "\x1b" not in out and "\r" not in out
    lines = out.splitlines()
    assert lines[0].startswith(approval_id) and "\\x1b[8m" in lines[0] and "\\n" in lines[0]
    assert lines[1:] == ["    split.test_size 0.2 -> 0.3"]


def test_a_plain_requester_name_is_listed_as_it_is(workspace: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    anyio.run(_request_approval, workspace, "codex-1")
    lines = _listing(workspace, capsys, monkeypatch).splitlines()
    assert "requested by codex-1 (agent)" in lines[0]
    assert lines[1:] == ["    split.test_size 0.2 -> 0.3"]
