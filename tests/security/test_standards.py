"""Relaxing the standards or the server config behind the server's back, as an agent with its own
shell would: a plain commit on main (hook passing, or skipped with --no-verify), protected_ref
pointed at an agent branch, the sandbox switched off in server.yaml, a forged pin file, a forged
acknowledgement record. Every governed call is refused, naming the drift, until a human or
operator runs `mlgate standards accept` with their own token."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.acknowledgements import PIN_FILE, read_pin
from server.app import build_server
from server.audit import AuditChain
from server.cli import main
from server.git import GitRepo
from server.settings import Settings, load_settings
from tests.credentials import use_token

pytestmark = pytest.mark.anyio

STANDARDS = "configs/project_standards.yaml"
REASONING = {
    "hypothesis_category": "hyperparameter_tuning",
    "change_description": "Deeper trees to capture interactions between income and debt",
    "expected_effect": "roc_auc improves by about one point on the validation folds",
}
DRY_RUN = {"changes": {"model.params.max_depth": 5}, "reasoning": REASONING, "dry_run": True}


@pytest.fixture
def env() -> dict[str, str]:
    """The agent's own shell: plain git with the workspace's hooks, no mlgate credential."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLGATE_"))}
    return {**clean, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "a@x"}


def git(workspace: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=workspace, env=env, capture_output=True, text=True, check=False)


def edit(workspace: Path, relpath: str, old: str, new: str) -> None:
    path = workspace / relpath
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


async def call(settings: Settings) -> tuple[bool, dict[str, Any]]:
    """A governed call through a freshly started server (as after a restart)."""
    with anyio.fail_after(60):
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("propose_config_change", DRY_RUN)
    return result.is_error, result.structured_content or {}


def committed_sha256(workspace: Path) -> str:
    return hashlib.sha256(GitRepo(workspace).show("main", STANDARDS) or b"").hexdigest()


def last_decision(settings: Settings) -> dict[str, Any]:
    records = [json.loads(line) for line in settings.audit_path.read_text().splitlines()]
    return [r for r in records if r.get("kind") == "decision"][-1]


async def test_a_relaxed_gate_committed_on_main_through_the_hook_is_refused_naming_the_drift(workspace: Path, settings: Settings, env: dict[str, str]) -> None:
    before = (await call(settings))[0]
    edit(workspace, STANDARDS, "min_primary_metric: 0.70", "min_primary_metric: 0.10")
    committed = git(workspace, env, "commit", "-q", "-m", "looser floor", "--", STANDARDS)
    assert committed.returncode == 0 and "mlgate standards accept" in committed.stderr  # the hook let it through, and said so
    is_error, result = await call(settings)
    assert before is False and is_error and result["rule_id"] == "standards.acknowledged"
    assert "gates.min_primary_metric: 0.7 -> 0.1" in result["reason"] and "standards sha256 " in result["reason"]
    assert "mlgate standards accept --workspace DIR" in result["remediation"]
    assert last_decision(settings)["rule_ids"] == ["standards.acknowledged"] and last_decision(settings)["decision"] == "deny"


async def test_a_protected_field_removed_with_no_verify_is_refused(workspace: Path, settings: Settings, env: dict[str, str]) -> None:
    edit(workspace, STANDARDS, "  data.target: default\n", "")
    assert git(workspace, env, "commit", "-q", "--no-verify", "-m", "unprotect", "--", STANDARDS).returncode == 0
    is_error, result = await call(settings)
    assert is_error and result["rule_id"] == "standards.acknowledged"
    assert 'protected_fields.data.target: removed (was "default")' in result["reason"]


async def test_protected_ref_pointed_at_an_agent_branch_is_refused_and_cannot_be_accepted(
    workspace: Path, settings: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert git(workspace, env, "checkout", "-q", "-b", "agent/looser").returncode == 0
    edit(workspace, STANDARDS, "  data.target: default\n", "")
    assert git(workspace, env, "commit", "-q", "--no-verify", "-m", "unprotect", "--", STANDARDS).returncode == 0
    (settings.state_dir / "server.yaml").write_text("protected_ref: agent/looser\n")
    is_error, result = await call(load_settings(workspace, transport="memory"))
    assert is_error and result["rule_id"] == "standards.acknowledged"
    assert 'server config protected_ref: "main" -> "agent/looser"' in result["reason"] and "protected_fields.data.target: removed" in result["reason"]
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert main(["standards", "accept", "--workspace", str(workspace), "--yes"]) == 2
    assert "branch agents may push" in capsys.readouterr().err


async def test_the_sandbox_switched_off_in_server_yaml_is_refused(workspace: Path, settings: Settings) -> None:
    (settings.state_dir / "server.yaml").write_text("sandbox_mode: unconfined\nsandbox:\n  wall_clock_seconds: 99999\n")
    is_error, result = await call(load_settings(workspace, transport="memory"))
    assert is_error and 'server config sandbox_mode: "bwrap" -> "unconfined"' in result["reason"]
    assert "server config sandbox.wall_clock_seconds: 3600.0 -> 99999.0" in result["reason"] and "server config sha256 " in result["reason"]


async def test_a_forged_pin_file_grants_nothing(workspace: Path, settings: Settings, env: dict[str, str]) -> None:
    pin = read_pin(settings.state_dir)
    edit(workspace, STANDARDS, "min_primary_metric: 0.70", "min_primary_metric: 0.10")
    assert git(workspace, env, "commit", "-q", "-m", "looser floor", "--", STANDARDS).returncode == 0
    relaxed = committed_sha256(workspace)
    (settings.state_dir / PIN_FILE).write_text(json.dumps({**(pin or {}), "standards_sha256": relaxed, "seq": 7, "hash": "f" * 64}))
    is_error, result = await call(settings)
    assert is_error and result["rule_id"] == "standards.acknowledged" and "grants nothing" in result["reason"]


@pytest.mark.parametrize("forged", [{"via": "accept", "credential": "mallory:0123456789ab"}, {"via": "init"}, {"via": "accept", "role": "agent"}])
async def test_a_forged_acknowledgement_record_grants_nothing(workspace: Path, settings: Settings, env: dict[str, str], forged: dict[str, Any]) -> None:
    edit(workspace, STANDARDS, "min_primary_metric: 0.70", "min_primary_metric: 0.10")
    assert git(workspace, env, "commit", "-q", "-m", "looser floor", "--", STANDARDS).returncode == 0
    genuine = [json.loads(line) for line in settings.audit_path.read_text().splitlines()][0]
    relaxed = committed_sha256(workspace)
    body = {k: v for k, v in genuine.items() if k not in ("seq", "time", "prev", "hash")}
    chain = AuditChain(settings.audit_path)  # a well-formed, correctly chained record, as mlgate would write it
    written = chain.append({**body, "principal": "mallory", "role": "operator", "standards_sha256": relaxed, **forged})
    chain.close()
    (settings.state_dir / PIN_FILE).write_text(json.dumps({k: written[k] for k in ("seq", "hash", "standards_sha256", "server_config_sha256")}))
    is_error, result = await call(settings)
    assert is_error and result["rule_id"] == "standards.acknowledged"


async def test_accept_needs_a_human_or_operator_token(workspace: Path, settings: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    edit(workspace, STANDARDS, "min_primary_metric: 0.70", "min_primary_metric: 0.10")
    assert git(workspace, env, "commit", "-q", "-m", "looser floor", "--", STANDARDS).returncode == 0
    assert main(["standards", "accept", "--workspace", str(workspace), "--yes"]) == 2
    use_token(monkeypatch, settings.state_dir, "bot", "agent")
    assert main(["standards", "accept", "--workspace", str(workspace), "--yes"]) == 2
    assert "credential" in capsys.readouterr().err
    assert (await call(settings))[0] is True


async def test_a_human_accepts_the_shown_diff_and_calls_pass_again(workspace: Path, settings: Settings, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    edit(workspace, STANDARDS, "min_primary_metric: 0.70", "min_primary_metric: 0.75")
    assert git(workspace, env, "commit", "-q", "-m", "stricter floor", "--", STANDARDS).returncode == 0
    assert main(["standards", "status", "--workspace", str(workspace)]) == 1
    use_token(monkeypatch, settings.state_dir, "hana", "human")
    assert main(["standards", "accept", "--workspace", str(workspace), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "gates.min_primary_metric: 0.7 -> 0.75" in out and "acknowledged by hana (human, credential hana:" in out
    assert (await call(settings))[0] is False
    record = [json.loads(line) for line in settings.audit_path.read_text().splitlines() if '"standards_acknowledged"' in line][-1]
    assert record["via"] == "accept" and record["principal"] == "hana" and record["credential"].startswith("hana:")
    assert record["previous"]["standards_sha256"] != record["standards_sha256"] and read_pin(settings.state_dir)["seq"] == record["seq"]
    assert main(["standards", "status", "--workspace", str(workspace)]) == 0
