"""Attacks on approvals and approver credentials by an agent with its own shell (issue 8 items 1-2).

An approval file, protected_in_force.json and tokens.json are plain files in the state directory;
the agent can edit them, and it can run the `mlgate` CLI. Each test performs the attack for real
(files rewritten by hand, the CLI run as a subprocess from the agent's environment) and asserts it
is refused, and that `mlgate audit verify` reports the forged state.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.auth import TokenStore, TokenVerifier
from server.cli import main
from server.commands.data import import_files
from server.credentials import TOKEN_ENV
from server.demo_data import write_credit_csv
from server.settings import Settings
from tests.mcp_calls import call_tool
from tests.credentials import issue, use_token

pytestmark = pytest.mark.anyio
REPO_ROOT = Path(__file__).resolve().parents[2]
REASONING = {
    "hypothesis_category": "baseline",
    "change_description": "Predict churn instead of default for the retention team",
    "expected_effect": "a churn model whose roc_auc is comparable to the default model",
}
CHURN = {"changes": {"data.target": "churn"}, "reasoning": REASONING}


call = call_tool  # the agent's call over the in-memory client (its stdio server's principal)


def approval_file(settings: Settings, approval_id: str) -> Path:
    return settings.state_dir / "approvals" / f"{approval_id}.json"


def rewrite(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}, indent=2))


def audit_verify(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", "--workspace", str(settings.workspace)])
    return code, capsys.readouterr().out


def agent_cli(settings: Settings, *argv: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """`mlgate ...` as the agent runs it from its own shell: a subprocess without a terminal, with
    the agent's environment (no approver token unless it found one)."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    command = [sys.executable, "-m", "server.cli", *argv, "--workspace", str(settings.workspace)]
    return subprocess.run(command, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


async def pending(settings: Settings) -> dict[str, Any]:
    denied, result = await call(settings, "propose_config_change", CHURN)
    assert denied and result["approval_status"] == "pending"
    return result


# --- item 1: approvals are plain files --------------------------------------------------------


async def test_flipping_a_pending_approval_file_to_approved_grants_nothing(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    first = await pending(settings)
    rewrite(approval_file(settings, first["approval_id"]), status="approved", decided_by="risk-officer", decided_role="human")
    denied, again = await call(settings, "propose_config_change", CHURN)
    assert denied and again["rule_id"] == "config.protected_fields"
    assert again["approval_id"] == first["approval_id"] and again["approval_status"] == "pending"
    assert "target: default" in (settings.workspace / "configs/experiment.yaml").read_text()
    code, out = audit_verify(settings, capsys)
    assert code == 1 and f"approval {first['approval_id']} (approved): its file says approved but the audit chain says pending" in out


async def test_a_new_approval_file_written_by_hand_grants_nothing(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    dry, preview = await call(settings, "propose_config_change", {**CHURN, "dry_run": True})
    forged = {
        "id": "apr-0123456789ab", "status": "approved", "kind": "config_change", "change_hash": preview["change_hash"],
        "target": "configs/experiment.yaml", "diff": preview["diff"], "protected_fields": [], "reasoning": None,
        "requested_by": {"name": "local-agent", "role": "agent"}, "created_at": "2026-01-01T00:00:00Z",
        "decided_by": "risk-officer", "decided_role": "human", "decided_at": "2026-01-01T00:01:00Z",
    }  # fmt: skip
    approval_file(settings, forged["id"]).parent.mkdir(parents=True, exist_ok=True)
    approval_file(settings, forged["id"]).write_text(json.dumps(forged))
    denied, result = await call(settings, "propose_config_change", CHURN)
    assert denied and result["rule_id"] == "config.protected_fields" and result["approval_id"] != forged["id"]
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "approval apr-0123456789ab (approved): the audit chain holds no request for it" in out


async def test_an_approval_whose_described_change_was_edited_cannot_be_approved(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The agent rewrites what the approver will read (an innocuous diff) under the same change hash."""
    first = await pending(settings)
    innocuous = [{"path": "experiment.seed", "op": "replace", "old": 42, "new": 7}]
    rewrite(approval_file(settings, first["approval_id"]), diff=innocuous, protected_fields=[])
    use_token(monkeypatch, settings.state_dir, "risk-officer")
    assert await anyio.to_thread.run_sync(main, ["approvals", "approve", first["approval_id"], "--workspace", str(settings.workspace)]) == 2
    assert "unvouched" in capsys.readouterr().err
    denied, again = await call(settings, "propose_config_change", CHURN)
    assert denied and again["approval_id"] != first["approval_id"]
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "the change it describes was edited after it was requested" in out


async def test_an_approval_retargeted_to_another_change_or_reset_after_use_grants_nothing(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    first = await pending(settings)
    use_token(monkeypatch, settings.state_dir, "risk-officer")
    assert await anyio.to_thread.run_sync(main, ["approvals", "approve", first["approval_id"], "--workspace", str(settings.workspace)]) == 0
    assert not (await call(settings, "propose_config_change", CHURN))[0]
    assert not (await call(settings, "propose_config_change", {"changes": {"data.target": "default"}, "reasoning": REASONING}))[0]
    rewrite(approval_file(settings, first["approval_id"]), status="approved")
    denied, again = await call(settings, "propose_config_change", CHURN)
    assert denied and again["approval_id"] != first["approval_id"]
    other = await call(settings, "propose_config_change", {"changes": {"data.target": "churned"}, "reasoning": REASONING, "dry_run": True})
    rewrite(approval_file(settings, first["approval_id"]), change_hash=other[1]["change_hash"], status="approved")
    denied, retargeted = await call(settings, "propose_config_change", {"changes": {"data.target": "churned"}, "reasoning": REASONING})
    assert denied and retargeted["approval_id"] != first["approval_id"]
    code, out = audit_verify(settings, capsys)
    assert code == 1 and f"approval {first['approval_id']}" in out


async def test_a_forged_in_force_entry_does_not_let_a_hand_edited_protected_field_train(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = import_files(settings.workspace, [write_credit_csv(tmp_path / "credit.csv", rows=300)]).added.content_hash
    assert not (await call(settings, "propose_config_change", {"changes": {"data.dataset": dataset}, "reasoning": REASONING}))[0]
    config = settings.workspace / "configs/experiment.yaml"
    config.write_text(config.read_text().replace("use_protected_attributes: false", "use_protected_attributes: true"))
    in_force = settings.state_dir / "approvals" / "protected_in_force.json"
    in_force.write_text(json.dumps({**json.loads(in_force.read_text()), "features.use_protected_attributes": "true"}))
    denied, result = await call(settings, "run_experiment", {"dry_run": True, "reasoning": REASONING})
    assert denied and "config.no_unapproved_overrides" in {d["rule_id"] for d in result.get("denials") or [result]}
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "protected_in_force.json: features.use_protected_attributes = true has no vouching record" in out


# --- item 2: approving needs a credential the agent does not hold -------------------------------


async def test_the_agent_running_approvals_approve_without_a_token_is_refused(settings: Settings) -> None:
    approval_id = (await pending(settings))["approval_id"]
    refused = agent_cli(settings, "approvals", "approve", approval_id)
    assert refused.returncode == 2 and "needs a credential of role human or operator" in refused.stderr
    claimed = agent_cli(settings, "approvals", "approve", approval_id, "--as", "risk-officer", "--role", "operator")
    assert claimed.returncode == 2 and "unrecognized arguments" in claimed.stderr
    with_agent_token = agent_cli(settings, "approvals", "approve", approval_id, token=issue(settings.state_dir, "local-agent-http", "agent"))
    assert with_agent_token.returncode == 2 and "has role agent" in with_agent_token.stderr
    assert json.loads(approval_file(settings, approval_id).read_text())["status"] == "pending"
    assert (await call(settings, "propose_config_change", CHURN))[1]["approval_status"] == "pending"


async def test_a_token_hash_pasted_into_tokens_json_grants_nothing(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    approval_id = (await pending(settings))["approval_id"]
    issue(settings.state_dir, "root-op", "operator")
    forged_token = "mlgate_" + "f" * 43
    tokens = settings.state_dir / "tokens.json"
    data = json.loads(tokens.read_text())
    data["tokens"].append({"name": "risk-officer", "role": "operator", "sha256": hashlib.sha256(forged_token.encode()).hexdigest(), "created": "2026-01-01T00:00:00Z"})
    tokens.write_text(json.dumps(data))
    refused = agent_cli(settings, "approvals", "approve", approval_id, token=forged_token)
    assert refused.returncode == 2 and "not a valid mlgate token" in refused.stderr
    assert await TokenVerifier(TokenStore(settings.state_dir)).verify_token(forged_token) is None
    assert json.loads(approval_file(settings, approval_id).read_text())["status"] == "pending"
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "token 'risk-officer' (operator) in tokens.json has no live token_created record" in out


async def test_the_agent_cannot_mint_itself_a_human_token_once_an_operator_exists(settings: Settings) -> None:
    issue(settings.state_dir, "root-op", "operator")
    refused = agent_cli(settings, "token", "create", "--name", "risk-officer", "--role", "human")
    assert refused.returncode == 2 and "needs a credential of role operator" in refused.stderr
    assert [r.name for r in TokenStore(settings.state_dir).records()] == ["root-op"]


async def test_a_stdio_server_refuses_to_start_where_an_approver_token_is_in_the_environment(settings: Settings) -> None:
    """Exported in the shell that starts the agent, the approver's token would be the agent's too."""
    refused = agent_cli(settings, "serve", token=issue(settings.state_dir, "risk-officer"))
    assert refused.returncode == 2 and "MLGATE_TOKEN holds the human token of 'risk-officer'" in refused.stderr


async def test_a_stdio_server_started_as_an_operator_cannot_approve(settings: Settings) -> None:
    approval_id = (await pending(settings))["approval_id"]
    operator = settings.model_copy(update={"local_principal": "risk-officer", "local_role": "operator"})
    denied, result = await call(operator, "decide_approval", {"approval_id": approval_id, "decision": "approve"})
    assert denied and result["rule_id"] == "role.approver_authenticated"
    assert json.loads(approval_file(settings, approval_id).read_text())["status"] == "pending"


async def test_an_honest_decision_verifies_clean(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    approval_id = (await pending(settings))["approval_id"]
    use_token(monkeypatch, settings.state_dir, "risk-officer")
    assert await anyio.to_thread.run_sync(main, ["approvals", "approve", approval_id, "--workspace", str(settings.workspace)]) == 0
    assert not (await call(settings, "propose_config_change", CHURN))[0]
    code, out = audit_verify(settings, capsys)
    assert code == 0 and "NOT VOUCHED" not in out, out
