"""Tampering with the protected-field overrides log is reported by `mlgate audit verify`.

`logs/protected_overrides.log` lives in the workspace, where the agent's own shell can edit it.
The workspace of these tests has one approved override of two protected fields, made for real: a
propose_config_change through an MCP client, approved with a human's token through the CLI, then
applied. The attacker edits, deletes, duplicates or invents log lines by hand; verify must name
each (and pass the untouched log).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.cli import main
from server.credentials import TOKEN_ENV
from server.ports import build_ports
from server.settings import Settings, load_settings
from server.workspace import init_workspace
from tests.credentials import issue

LOG = "logs/protected_overrides.log"
REASONING = {
    "hypothesis_category": "baseline",
    "change_description": "Predict churn with a larger test split for the retention team",
    "expected_effect": "a churn model whose roc_auc is comparable to the default model",
}
CHANGES = {"data.target": "churn", "split.test_size": 0.25}


async def _override(settings: Settings) -> None:
    """Propose (denied: protected), approve as a human with her token, apply: two log lines."""
    arguments = {"changes": CHANGES, "reasoning": REASONING}
    ports = build_ports(settings)
    try:
        async with Client(build_server(settings, ports)) as client:
            denied = (await client.call_tool("propose_config_change", arguments)).structured_content
            with pytest.MonkeyPatch.context() as env:
                env.setenv(TOKEN_ENV, issue(settings.state_dir, "alice", "human"))
                assert await anyio.to_thread.run_sync(main, ["approvals", "approve", denied["approval_id"], "--workspace", str(settings.workspace)]) == 0
            applied = (await client.call_tool("propose_config_change", arguments)).structured_content
    finally:
        ports.audit.close()  # its batched anchor write must land before the fixture's copies are taken
    assert applied["protected_overrides_logged"] == 2


@pytest.fixture(scope="module")
def overridden_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = init_workspace(tmp_path_factory.mktemp("overrides") / "ws")
    anyio.run(_override, load_settings(workspace, transport="memory"))
    return workspace


@pytest.fixture
def settings(overridden_template: Path, tmp_path: Path) -> Settings:
    """A copy of the workspace with its two override lines (the approval flow runs once per module)."""
    workspace = tmp_path / "ws"
    shutil.copytree(overridden_template, workspace, symlinks=True)
    return load_settings(workspace, transport="memory")


def log_lines(settings: Settings) -> list[str]:
    return (settings.workspace / LOG).read_text().splitlines(keepends=True)


def entries(settings: Settings) -> list[int]:
    """Indexes (in log_lines) of the override lines, skipping the template's comments."""
    return [n for n, line in enumerate(log_lines(settings)) if not line.startswith("#")]


def write(settings: Settings, lines: list[str]) -> None:
    (settings.workspace / LOG).write_text("".join(lines))


def audit_verify(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", "--workspace", str(settings.workspace)])
    return code, capsys.readouterr().out


def test_the_untouched_overrides_log_verifies(settings: Settings, capsys) -> None:
    code, out = audit_verify(settings, capsys)
    assert code == 0, out
    assert "overrides 2" in out and "OVERRIDE" not in out
    assert all(line.count("\t") == 7 for n, line in enumerate(log_lines(settings)) if n in entries(settings))


def test_an_edited_line_is_reported(settings: Settings, capsys) -> None:
    lines, first = log_lines(settings), entries(settings)[0]
    assert '\t"churn"\t' in lines[first]
    lines[first] = lines[first].replace('\t"churn"\t', '\t"default"\t')  # hides that the target changed
    write(settings, lines)
    code, out = audit_verify(settings, capsys)
    assert code == 1
    assert f"OVERRIDE EDITED: {LOG} line {first + 1} is not a line audit record" in out
    assert "OVERRIDE REMOVED" in out and "lists 1 override line(s) the log no longer holds" in out


def test_a_deleted_line_is_reported(settings: Settings, capsys) -> None:
    lines, second = log_lines(settings), entries(settings)[1]
    write(settings, lines[:second] + lines[second + 1 :])
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "OVERRIDE REMOVED" in out and "1 override line(s) the log no longer holds" in out
    assert "OVERRIDE EDITED" not in out


def test_a_log_emptied_back_to_the_template_is_reported(settings: Settings, capsys) -> None:
    write(settings, [line for line in log_lines(settings) if line.startswith("#")])
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "2 override line(s) the log no longer holds" in out


@pytest.mark.parametrize(
    ("forge", "says"),
    [
        (lambda genuine: genuine.rpartition("\t")[0] + "\n", "OVERRIDE UNWITNESSED"),  # written by hand, no witness
        (lambda genuine: genuine.replace("split.test_size", "model.type"), "OVERRIDE EDITED"),  # a copied witness
        (lambda genuine: genuine, "OVERRIDE EDITED"),  # a genuine line duplicated
        (lambda genuine: genuine.rpartition("\t")[0] + "\t999:" + "ab" * 32 + "\n", "OVERRIDE NOT IN CHAIN"),  # an invented witness
    ],
    ids=["no_witness", "copied_witness", "duplicate", "invented_witness"],
)
def test_a_forged_line_added_is_reported(settings: Settings, capsys, forge, says: str) -> None:
    lines = log_lines(settings)
    genuine = lines[entries(settings)[1]]
    write(settings, [*lines, forge(genuine)])
    code, out = audit_verify(settings, capsys)
    assert code == 1 and says in out and f"{LOG} line {len(lines) + 1}" in out
    assert "OVERRIDE REMOVED" not in out  # the genuine lines are all still there


def test_a_log_replaced_by_a_symlink_is_reported(settings: Settings, tmp_path: Path, capsys) -> None:
    elsewhere = tmp_path / "elsewhere.log"
    elsewhere.write_text("".join(log_lines(settings)))
    (settings.workspace / LOG).unlink()
    (settings.workspace / LOG).symlink_to(elsewhere)
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "OVERRIDES LOG UNREADABLE" in out
