"""`mlgate demo`: a demo workspace with a dataset, and a scripted session through a real MCP client
(stdio, the transport Claude Code uses). Each step prints what was asked and what the server said."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from server.audit import verify
from server.credentials import TOKEN_ENV
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.settings import load_settings
from server.workspace import init_workspace

REASONING = {
    "hypothesis_category": "hyperparameter_tuning",
    "change_description": "Use the governed credit dataset with shallower, slower-learning trees to curb overfitting.",
    "expected_effect": "Higher test roc_auc than the default trees on about 1,200 training rows.",
}


def say(step: str, detail: Any = None) -> None:
    print(f"\n== {step}")
    if detail is not None:
        print(detail if isinstance(detail, str) else json.dumps(detail, indent=2, sort_keys=True, default=str))


def prepare(directory: Path | None, rows: int) -> tuple[Path, str]:
    """A fresh workspace with the synthetic credit dataset added; returns (workspace, content hash)."""
    from server.commands.data import import_files

    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="mlgate-demo-"))
    workspace = init_workspace(root / "workspace")
    csv = write_credit_csv(root / "applications.csv", rows=rows)
    return workspace, import_files(workspace, [csv]).added.content_hash


def server_parameters(workspace: Path) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}
    env.update(MLGATE_PRINCIPAL="demo-agent", MLGATE_ROLE="agent")
    return StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve", "--workspace", str(workspace)], env=env)


def brief(result: Any) -> dict[str, Any]:
    content = dict(result.structured_content or {})
    return {"is_error": bool(result.is_error), **content}


def issue_approver_token(workspace: Path) -> str:
    """What an operator does once per workspace: bootstrap the first operator token, then issue the
    risk officer a human token (both recorded in the audit chain). Returns the risk officer's token."""
    from server.auth import TokenStore
    from server.credentials import principal_for

    store = TokenStore(load_settings(workspace).state_dir)
    operator = principal_for(store, store.create("demo-operator", "operator"))
    return store.create("risk-officer", "human", issuer=operator)


async def approve(workspace: Path, approval_id: str, token: str) -> int:
    """A human at another terminal: a separate `mlgate approvals approve` process, with the risk
    officer's own token in MLGATE_TOKEN (the agent's server never sees it)."""
    argv = [sys.executable, "-m", "server.cli", "approvals", "approve", approval_id, "--workspace", str(workspace), "--note", "demo approval"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLGATE_")}, TOKEN_ENV: token}
    process = await anyio.run_process(argv, check=False, stdout=None, stderr=None, env=env)
    return process.returncode


def _dataset_summary(content: dict[str, Any]) -> dict[str, Any]:
    keep = ("content_hash", "schema_hash", "rows", "columns", "sample")
    return {k: content[k] for k in keep if k in content} or content


def _run_summary(content: dict[str, Any]) -> dict[str, Any]:
    keep = ("run_id", "status", "metrics", "baseline_metrics", "metric_delta", "outcome", "gate_receipt", "sandbox_mode", "commit", "dirty")
    return {k: content[k] for k in keep if k in content} or content


async def session(workspace: Path, content_hash: str, *, train: bool) -> dict[str, Any]:
    """The scripted agent session; returns what each step answered (for tests)."""
    answers: dict[str, Any] = {}
    async with Client(server_parameters(workspace)) as client:
        answers["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        say("1. the agent lists the governed tools", answers["tools"])
        answers["load"] = brief(await client.call_tool("load_dataset", {"content_hash": content_hash}))
        say("2. load_dataset: verified manifest, PII masked in the sample", _dataset_summary(answers["load"]))
        allowed = {"changes": {"data.dataset": content_hash, "model.params": {"n_estimators": 150, "max_depth": 2, "learning_rate": 0.05}}, "reasoning": REASONING}
        answers["allowed"] = brief(await client.call_tool("propose_config_change", allowed))
        say("3. propose_config_change (ordinary fields): allowed and written", {k: answers["allowed"].get(k) for k in ("is_error", "decision", "diff")})
        protected = {"changes": {"split.test_size": 0.25}, "reasoning": {**REASONING, "change_description": "Hold out a quarter of the latest rows instead of a fifth for testing."}}
        answers["denied"] = brief(await client.call_tool("propose_config_change", protected))
        say("4. propose_config_change (protected field): denied, approval requested", {k: answers["denied"].get(k) for k in ("is_error", "decision", "rule_id", "reason", "remediation", "approval_id", "next_step")})
        say("5. a risk officer approves out of band with her own token: MLGATE_TOKEN=... mlgate approvals approve " + str(answers["denied"].get("approval_id")))
        answers["approve_exit"] = await approve(workspace, answers["denied"]["approval_id"], issue_approver_token(workspace))
        answers["approved"] = brief(await client.call_tool("propose_config_change", protected))
        say("6. the same change again: allowed once, override logged", {k: answers["approved"].get(k) for k in ("is_error", "decision", "protected_overrides_logged")})
        if train:
            GitRepo(workspace).commit_all("agent: governed dataset, shallower trees, larger test window")
            answers["run"] = brief(await client.call_tool("run_experiment", {"reasoning": REASONING, "agent_model": "demo-script"}))
            say("7. run_experiment: sandboxed training, server-side metrics, MLflow run", _run_summary(answers["run"]))
    report = verify(load_settings(workspace).audit_path)
    answers["audit_ok"] = report.ok
    say("8. mlgate audit verify", report.summary())
    return answers
