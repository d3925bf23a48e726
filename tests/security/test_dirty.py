"""Attacks on run cleanliness by an agent with its own shell (issue 8 item 5): a change hidden from
`git status` (skip-worktree, assume-unchanged) must still make the run dirty, and open_pr and
promote must refuse it, re-checking the recorded file hashes against the commit.

Real git (the agent's own `git update-index` calls), a real workspace with a dataset imported by
the real CLI, a real MCP client, one real sandboxed training run.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.cli import main
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import Ports, build_ports
from server.settings import Settings
from tests.credentials import use_token
from tests.tools.runs_lab import use_quick_run
from tools.run_pins import run_files_check

pytestmark = pytest.mark.anyio
REASONING = {"hypothesis_category": "feature_engineering", "change_description": "Add a debt ratio feature to the credit model.", "expected_effect": "A small roc_auc gain from the ratio."}
HIDDEN_EDIT = "\n\ndef hidden(frame):\n    return frame  # changed after the commit, hidden from git status\n"


@pytest.fixture
def lab(workspace: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[GitRepo, Ports]:
    """An imported dataset, a committed config using it, and a clean commit on an agent branch."""
    with monkeypatch.context() as operator_shell:
        use_token(operator_shell, settings.state_dir, "data-ops", "operator")
        assert main(["data", "add", str(workspace), str(write_credit_csv(tmp_path / "credit.csv", rows=300))]) == 0
    content_hash = capsys.readouterr().out.strip()
    use_quick_run(workspace, content_hash)
    repo = GitRepo(workspace)
    repo.commit_all("use the credit dataset")
    repo.run("checkout", "-q", "-b", "agent/ratio")
    features = workspace / "src/features.py"
    features.write_text(features.read_text() + "\n# a debt ratio feature\n")
    repo.commit_all("a debt ratio feature")
    ports = build_ports(settings)
    yield repo, ports
    ports.audit.close()


def hide(repo: GitRepo, relpath: str, flag: str, text: str) -> None:
    """The attack: edit a file the run uses, then hide the edit from `git status` with plain git."""
    path = repo.path / relpath
    path.write_text(path.read_text() + text)
    subprocess.run(["git", "update-index", flag, relpath], cwd=repo.path, check=True)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo.path, capture_output=True, text=True, check=True).stdout == ""


async def call(settings: Settings, ports: Ports, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    async with Client(build_server(settings, ports)) as client:
        result = await client.call_tool(tool, arguments)
    return result.is_error, result.structured_content or {}


def denied_by(payload: dict[str, Any]) -> set[str]:
    return {payload.get("rule_id"), *(d["rule_id"] for d in payload.get("denials") or [])}


async def test_a_clean_commit_runs_clean(settings: Settings, lab: tuple[GitRepo, Ports]) -> None:
    denied, preview = await call(settings, lab[1], "run_experiment", {"reasoning": REASONING, "dry_run": True})
    assert not denied and preview["provenance"]["git_dirty"] is False and preview["provenance"]["dirty_files"] == []


@pytest.mark.parametrize("flag", ["--skip-worktree", "--assume-unchanged"])
@pytest.mark.parametrize("relpath", ["src/features.py", "configs/experiment.yaml"])
async def test_a_hidden_edit_of_a_file_the_run_uses_makes_it_dirty(settings: Settings, lab: tuple[GitRepo, Ports], flag: str, relpath: str) -> None:
    hide(lab[0], relpath, flag, HIDDEN_EDIT if relpath.endswith(".py") else "\n# hidden\n")
    denied, preview = await call(settings, lab[1], "run_experiment", {"reasoning": REASONING, "dry_run": True})
    assert not denied and preview["provenance"]["git_dirty"] is True and preview["provenance"]["dirty_files"] == [relpath]


async def test_changes_for_this_run_only_make_it_dirty(settings: Settings, lab: tuple[GitRepo, Ports]) -> None:
    denied, preview = await call(settings, lab[1], "run_experiment", {"reasoning": REASONING, "config": {"model.params": {"C": 0.5}}, "dry_run": True})
    assert not denied and preview["provenance"]["git_dirty"] is True and preview["provenance"]["dirty_files"] == ["config changes for this run only"]


async def test_a_skip_worktree_run_is_recorded_dirty_and_neither_opens_a_pr_nor_promotes(settings: Settings, lab: tuple[GitRepo, Ports]) -> None:
    repo, ports = lab
    hide(repo, "src/features.py", "--skip-worktree", HIDDEN_EDIT)
    failed, run = await call(settings, ports, "run_experiment", {"reasoning": REASONING})
    assert not failed, run
    params = ports.tracking.get_run(run["run_id"])["params"]
    assert run["dirty"] is True and params["git_dirty"] == "true" and params["git_commit"] == repo.head()
    assert run["dirty_files"] == ["src/features.py"] and "open_pr and promote refuse it" in run["dirty_note"]
    denied, pr = await call(settings, ports, "open_pr", {"run_id": run["run_id"], "title": "Debt ratio feature"})
    assert denied and "pr.run_clean" in denied_by(pr)
    denied, promoted = await call(settings, ports, "promote", {"run_id": run["run_id"], "alias": "candidate"})
    gates = {g["gate"]: g for g in promoted["gate_receipt"]["gates"]}
    assert denied and gates["run_clean"]["status"] == "FAIL"
    # The agent also rewrites the flag in the tracking store: open_pr and promote find the run's params
    # are not the ones the audit chain recorded, and the recorded file hashes still tell on their own.
    with sqlite3.connect(settings.state_dir / "mlflow.db") as db:
        db.execute("UPDATE params SET value = 'false' WHERE run_uuid = ? AND key = 'git_dirty'", (run["run_id"],))
    params = ports.tracking.get_run(run["run_id"])["params"]
    assert params["git_dirty"] == "false" and run_files_check(ports.git, params)["mismatched"] == ["src/features.py"]
    for tool, arguments in (("open_pr", {"title": "Debt ratio feature"}), ("promote", {"alias": "candidate"})):
        denied, refused = await call(settings, ports, tool, {"run_id": run["run_id"], **arguments})
        assert denied and refused["rule_id"] == "integrity.run_metrics" and "its params" in refused["reason"], refused
