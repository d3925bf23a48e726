"""open_pr through the real server (in-memory MCP client): real workspace and git, runs in a real
MLflow sqlite store, the local PR provider's bare remote and records, the audit chain."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from mcp import Client

from policies.provenance import COMMIT
from server.app import build_server
from server.audit.run_metrics import RunMetricsLedger
from server.cli import main
from server.git import GitRepo
from server.ledger import ChainWriter
from server.ports import Ports, build_ports
from server.settings import Settings, load_settings
from tools.base import CallContext
from tools.errors import GitRefused
from tools.open_pr import OpenPrInput, body_problem, default_branch, execute, gather
from tools.provenance import run_files_param
from tools.sealed import COMPUTED_BY_RUN
from tests.mlflow_store import client_with_experiment, sqlite_uri

pytestmark = pytest.mark.anyio

RECEIPT = {"gates": [{"name": "min_primary_metric", "status": "PASS", "observed": 0.81, "threshold": 0.7}], "verdict": "PASS"}
HOSTILE = ["--upload-pack=touch MARK", "-c x=y", "main", "a..b", "agent/a..b", "@{-1}", "x\ny", "agent/x\ny", "a" * 300, "agent/" + "b" * 61, "agent/-x"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def tracking_uri(store: Path) -> str:
    return sqlite_uri(store)


@pytest.fixture(scope="module")
def mlflow_client(tracking_uri: str, store: Path) -> Any:
    return client_with_experiment(store, "demo-bank/credit-default")


@pytest.fixture
def settings(workspace: Path, tracking_uri: str) -> Settings:
    return load_settings(workspace, transport="memory", tracking_uri=tracking_uri)


@pytest.fixture
def ports(settings: Settings) -> Ports:
    return build_ports(settings)


@pytest.fixture
def repo(workspace: Path) -> GitRepo:
    return GitRepo(workspace)


def used_files(repo: GitRepo, commit: str) -> str:
    """The run_files_sha256 param of a run that used the files committed at `commit`."""
    blobs = {path: repo.blob_at(commit, path) for path in ("src/features.py", "configs/experiment.yaml")} if COMMIT.match(commit) else {}
    return run_files_param({path: hashlib.sha256(blob).hexdigest() for path, blob in blobs.items() if blob is not None})


def make_run(client: Any, repo: GitRepo, commit: str, *, dirty: str = "false", status: str = "FINISHED", receipt: Any = RECEIPT, recorded_files: bool = True,
             experiment_name: str = "demo-bank/credit-default", vouch: bool = True) -> str:  # fmt: skip
    """A run as run_experiment leaves it: Tier 1 params (with the hashes of the files it used),
    metrics, tags, gate receipt, and (unless `vouch` is False: a run copied into the store by hand)
    its run_metrics record in the workspace's audit chain."""
    found = client.get_experiment_by_name(experiment_name)
    store_artifacts = client.get_experiment_by_name("demo-bank/credit-default").artifact_location  # the store's tmp dir, never ./mlruns
    experiment = found.experiment_id if found is not None else client.create_experiment(experiment_name, artifact_location=f"{store_artifacts}/{experiment_name.replace('/', '-')}")
    run_id = client.create_run(experiment, tags={"client_name": "demo-bank", "project_name": "credit-default", "principal": "local-agent", "transport": "memory"}).info.run_id
    params = {"git_commit": commit, "git_dirty": dirty, "dataset_content_hash": "d" * 64, "dataset_schema_hash": "e" * 64, "uv_lock_sha256": "f" * 64,
              "feature_pipeline_hash": "1" * 64, "config_hash": "2" * 64, "standards_sha256": "3" * 64, "seed": "42", "run_files_sha256": used_files(repo, commit)}  # fmt: skip
    for key, value in params.items():
        if recorded_files or key != "run_files_sha256":
            client.log_param(run_id, key, value)
    sealed = {"test_roc_auc": 0.8123, "baseline_logistic_regression_roc_auc": 0.7456}  # test figures: never in the PR (an agent reads it)
    for key, value in {"val_roc_auc": 0.81, "val_baseline_logistic_regression_roc_auc": 0.74, "val_pr_auc": 0.52, **sealed}.items():
        client.log_metric(run_id, key, value)
    if receipt is not None:
        client.log_text(run_id, json.dumps({**receipt, "sealed_test": {"gates": [{"observed": 0.8123}]}}), "gate_receipt.json")
    if vouch and status == "FINISHED":
        run = client.get_run(run_id).data
        RunMetricsLedger(load_settings(repo.path, transport="memory").audit_path, None, SimpleNamespace(client=client)).record(run_id, run.metrics, run.params)
    client.set_terminated(run_id, status)
    return run_id


def commit_on(repo: GitRepo, branch: str, relpath: str = "src/features.py", text: str = "\n\ndef ratio(frame):\n    return frame.a / frame.b\n") -> str:
    """A commit on `branch` (created from main) that appends `text` to `relpath`."""
    repo.run("checkout", "-q", "-B", branch, "main")
    path = repo.path / relpath
    path.write_text(path.read_text() + text if path.exists() else text)
    commit = repo.commit_paths([relpath], f"change {relpath}")
    repo.run("checkout", "-q", "main")
    return commit


@asynccontextmanager
async def connect(settings: Settings, ports: Ports) -> AsyncIterator[Any]:
    async with Client(build_server(settings, ports)) as client:
        yield client


async def open_pr(client: Any, run_id: str, **extra: Any) -> tuple[bool, dict[str, Any]]:
    result = await client.call_tool("open_pr", {"run_id": run_id, "title": "Debt ratio feature", **extra})
    return result.is_error, result.structured_content


def remote(settings: Settings) -> GitRepo:
    return GitRepo(settings.state_dir / "remote.git")


def records(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((settings.state_dir / "prs").glob("*.json"))]


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_path.read_text().splitlines() if line.strip()]


def nothing_pushed_or_recorded(settings: Settings, branch: str) -> bool:
    pushed = (settings.state_dir / "remote.git" / "HEAD").is_file() and remote(settings).branch_head(branch) is not None
    return not pushed and records(settings) == []


# --- the allowed path -------------------------------------------------------------------------


async def test_open_pr_pushes_the_run_commit_and_records_the_pr_citing_the_run(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    commit = commit_on(repo, "agent/debt-ratio")
    run_id = make_run(mlflow_client, repo, commit)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/debt-ratio", body="Adds a debt-to-income ratio.")
    assert not is_error, result
    assert result["commit"] == commit and result["branch"] == "agent/debt-ratio" and result["pr"]["id"] == "local#1" and not result["branch_created"]
    assert remote(settings).branch_head("agent/debt-ratio") == commit and remote(settings).branch_head("main") is None
    assert result["pr"]["url"] == "mlgate-pr:local-1"
    assert not any(str(path) in json.dumps(result) for path in (settings.state_dir, settings.workspace, settings.workspace.parent)), result
    [record] = records(settings)
    assert record["run_id"] == run_id and record["commit"] == commit and record["base"] == "main"
    assert record["metrics"] == {"val_pr_auc": 0.52, "val_roc_auc": 0.81} and record["baseline"] == {"val_baseline_logistic_regression_roc_auc": 0.74}
    assert record["gate_receipt"] == RECEIPT and record["opened_by"]["role"] == "agent"
    description = record["description"]
    assert description.startswith("Adds a debt-to-income ratio.") and f"mlgate-run-id: {run_id}" in description and f"runs:/{run_id}" in description
    assert "val_roc_auc | `0.81`" in description and "val_baseline_logistic_regression_roc_auc | `0.74`" in description and '"verdict": "PASS"' in description
    assert "0.8123" not in description and "0.7456" not in description and "sealed_test" not in json.dumps(record)
    outcome = audit(settings)[-1]
    assert outcome["kind"] == "outcome" and outcome["status"] == "ok" and outcome["run_id"] == run_id and outcome["commit"] == commit
    assert await anyio.to_thread.run_sync(main, ["prs", "--workspace", str(settings.workspace)]) == 0
    assert "local#1" in capsys.readouterr().out


async def test_a_missing_branch_is_created_at_the_run_commit(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    commit = commit_on(repo, "work")
    run_id = make_run(mlflow_client, repo, commit, receipt=None)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id)
    assert not is_error, result
    branch = default_branch(run_id)
    assert result["branch"] == branch and result["branch_created"] and repo.branch_head(branch) == commit == remote(settings).branch_head(branch)
    assert "no gate receipt" in records(settings)[0]["description"]


async def test_opening_the_same_pr_twice_changes_nothing(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/twice"))
    async with connect(settings, ports) as client:
        first = await open_pr(client, run_id, branch="agent/twice")
        second = await open_pr(client, run_id, branch="agent/twice")
    assert not first[0] and not second[0] and first[1]["pr"] == second[1]["pr"] and second[1]["pr_changed"] is False
    assert len(records(settings)) == 1


async def test_dry_run_decides_and_previews_without_side_effects(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    commit = commit_on(repo, "work")
    run_id = make_run(mlflow_client, repo, commit)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, dry_run=True)
    assert not is_error and result["dry_run"] and result["would_create_branch"] and f"mlgate-run-id: {run_id}" in result["description"]
    assert repo.branch_head(default_branch(run_id)) is None and nothing_pushed_or_recorded(settings, default_branch(run_id))


async def test_the_dry_run_and_the_real_call_answer_changed_paths_alike(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    """An agent reads `changed_paths` as the dry run showed it: the same list once the PR is opened."""
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/paths"))
    async with connect(settings, ports) as client:
        dry = (await open_pr(client, run_id, branch="agent/paths", dry_run=True))[1]
        is_error, opened = await open_pr(client, run_id, branch="agent/paths")
    assert not is_error and dry["changed_paths"] == opened["changed_paths"] == ["src/features.py"], (dry, opened)


async def test_verify_pr_accepts_the_branch_of_an_opened_pr(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGATE_TRACKING_URI", tracking_uri)
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/verified"))
    async with connect(settings, ports) as client:
        assert not (await open_pr(client, run_id, branch="agent/verified"))[0]
    assert await anyio.to_thread.run_sync(main, ["verify-pr", "agent/verified", "--workspace", str(settings.workspace)]) == 0


# --- refusals -----------------------------------------------------------------------------------


async def test_a_dirty_run_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/dirty"), dirty="true")
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/dirty")
    assert is_error and result["rule_id"] == "pr.run_clean" and "commit your changes" in result["remediation"]
    assert nothing_pushed_or_recorded(settings, "agent/dirty")


async def test_a_run_that_recorded_no_hashes_of_the_files_it_used_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/unhashed"), recorded_files=False)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/unhashed")
    assert is_error and result["rule_id"] == "pr.run_clean" and "run_files_sha256" in result["reason"]
    assert nothing_pushed_or_recorded(settings, "agent/unhashed")


@pytest.mark.parametrize("status", ["FAILED", "KILLED", "RUNNING"])
async def test_a_run_that_did_not_finish_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, status: str) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/failed"), status=status)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/failed")
    assert is_error and result["rule_id"] == "pr.run_succeeded" and nothing_pushed_or_recorded(settings, "agent/failed")


def evaluated_before_chaining(settings: Settings, run_id: str) -> None:
    """The record an older mlgate (one that chained no run_metrics) left when it evaluated a run."""
    record = {"kind": "test_query", "dataset_hash": "d" * 64, "purpose": COMPUTED_BY_RUN, "run_id": run_id, "principal": "local-agent", "test_queries": 1}
    ChainWriter(settings.audit_path).append(record)


async def test_a_run_copied_into_the_store_by_hand_gets_no_pr(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/copied"), vouch=False)  # MlflowClient calls, as an agent with a shell makes them
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/copied", dry_run=True)
    assert is_error and result["rule_id"] == "integrity.run_metrics" and "holds no record of its metrics" in result["reason"], result
    assert nothing_pushed_or_recorded(settings, "agent/copied")


async def test_a_run_evaluated_before_runs_were_chained_still_gets_a_pr(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    older = make_run(mlflow_client, repo, commit_on(repo, "agent/older"), vouch=False)
    evaluated_before_chaining(settings, older)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, older, branch="agent/older", dry_run=True)
    assert not is_error, result


async def test_an_evaluation_chained_after_the_first_run_record_does_not_vouch_for_an_unrecorded_run(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    make_run(mlflow_client, repo, commit_on(repo, "agent/first"))  # the chain now records every run mlgate finishes
    later = make_run(mlflow_client, repo, commit_on(repo, "agent/later"), vouch=False)
    evaluated_before_chaining(settings, later)  # as an agent appending to a chain it can write would
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, later, branch="agent/later", dry_run=True)
    assert is_error and result["rule_id"] == "integrity.run_metrics", result


async def test_a_run_from_another_commit_than_the_branch_head_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    measured = commit_on(repo, "agent/moved-on")
    run_id = make_run(mlflow_client, repo, measured)
    repo.run("checkout", "-q", "agent/moved-on")
    (repo.path / "src/features.py").write_text("# later work\n")
    later = repo.commit_paths(["src/features.py"], "later work")
    repo.run("checkout", "-q", "main")
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/moved-on")
    assert is_error and result["rule_id"] == "pr.commit_is_branch_head" and later in result["reason"] and measured in result["reason"]
    assert repo.branch_head("agent/moved-on") == later and nothing_pushed_or_recorded(settings, "agent/moved-on")


async def test_a_run_of_another_project_in_the_store_is_refused_with_no_side_effect(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    """A clean, finished run of another project's experiment (a shared tracking store) at a commit
    of this repository: no PR of this project may cite it."""
    commit = commit_on(repo, "agent/foreign")
    run_id = make_run(mlflow_client, repo, commit, experiment_name="other-bank/other-project")
    async with connect(settings, ports) as client:
        for dry_run in (True, False):
            is_error, result = await open_pr(client, run_id, branch="agent/foreign", dry_run=dry_run)
            assert is_error and result["rule_id"] == "runs.same_project" and f"no run {run_id}" in result["reason"], result
    assert nothing_pushed_or_recorded(settings, "agent/foreign")


async def test_an_unknown_run_is_refused(settings: Settings, ports: Ports) -> None:
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, "0" * 32)
    assert is_error and result["rule_id"] == "tracking.run_not_found"


async def test_a_run_of_a_commit_already_on_main_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, repo.head() or "")
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id)
    assert is_error and result["rule_id"] == "pr.has_changes"


@pytest.mark.parametrize("disguise", ["", 'NOTE = """\n++ notes.md\n"""\n', 'NOTE = """\n++ /dev/null\n"""\n'], ids=["plain", "after-a-line-like-a-docs-header", "after-a-line-like-a-deletion-header"])
async def test_training_calls_in_the_diff_are_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, disguise: str) -> None:
    """Also after an added line `++ x`, which the patch shows as `+++ x`, like a file header."""
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/fits", text=f"\n\n{disguise}def scale(frame):\n    return StandardScaler().fit(frame)\n"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/fits")
    assert is_error and result["rule_id"] == "pr.training_guard" and "src/features.py:" in result["reason"]
    assert nothing_pushed_or_recorded(settings, "agent/fits")


async def test_a_protected_field_moved_in_the_commit_is_refused_unless_approved(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    text = (repo.path / "configs/experiment.yaml").read_text().replace("test_size: 0.2", "test_size: 0.3")
    repo.run("checkout", "-q", "-b", "agent/bigger-test")
    (repo.path / "configs/experiment.yaml").write_text(text)
    commit = repo.commit_paths(["configs/experiment.yaml"], "bigger test split")
    repo.run("checkout", "-q", "main")
    run_id = make_run(mlflow_client, repo, commit)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/bigger-test")
        assert is_error and result["rule_id"] == "pr.protected_fields_unchanged" and "split.test_size" in result["reason"]
        ports.approvals.set_in_force({"split.test_size": "0.3"})
        is_error, result = await open_pr(client, run_id, branch="agent/bigger-test")
    assert not is_error, result


async def test_an_agent_changing_the_standards_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/looser", "configs/project_standards.yaml", "\n# looser\n"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/looser")
    assert is_error and result["rule_id"] == "pr.standards_unchanged" and nothing_pushed_or_recorded(settings, "agent/looser")


async def test_a_credential_in_the_pr_text_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/leaky"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/leaky", body="use token ghp_" + "A1b2C3d4E5" * 4)
    assert is_error and result["rule_id"] == "pr.no_secrets" and "ghp_" not in json.dumps(result)
    assert nothing_pushed_or_recorded(settings, "agent/leaky")


@pytest.mark.parametrize("text", {"title": ("Fix ghp_" + "A1b2C3d4E5" * 4, None), "body": ("Debt ratio", "token sk-" + "x1Y2z3" * 4), "uri": ("see https://ci:hunter2@ci.example/x", None)}.values(), ids=["title", "body", "uri"])
async def test_a_dry_run_refused_for_a_credential_does_not_echo_it(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, text: tuple[str, str | None]) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/leaky"))
    title, body = text
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/leaky", title=title, dry_run=True, **({"body": body} if body else {}))
    assert is_error and result["rule_id"] == "pr.no_secrets" and result["dry_run"] and result["commit"]
    shown = json.dumps(result)
    assert "ghp_" not in shown and "sk-" not in shown and "hunter2" not in shown
    assert nothing_pushed_or_recorded(settings, "agent/leaky")


@pytest.mark.parametrize(
    "body",
    ["Adds a ratio.\n<!-- the provenance below renders as nothing", "Adds a ratio.\n<details><summary>more</summary>\n", "Adds a ratio.\n\n## mlgate provenance\n\n| val_roc_auc | `0.99` |", "Adds a ratio.\nmlgate-run-id: " + "0" * 32],
    ids=["open-comment", "open-details", "forged-block", "forged-trailer"],
)
async def test_a_body_that_could_hide_or_forge_the_provenance_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, body: str) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/spoof"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/spoof", body=body)
    assert is_error and result["rule_id"] == "input.schema" and "body" in result["reason"] and "provenance" in result["reason"], result
    assert nothing_pushed_or_recorded(settings, "agent/spoof")


@pytest.mark.parametrize(
    "title",
    ["Fix \u202egnp.exe", "Fix\u2028second line", "Fix\x85second line", "Fix \u2066isolated"],
    ids=["right-to-left-override", "line-separator", "next-line", "isolate"],
)
async def test_a_title_with_direction_or_line_controls_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, title: str) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/title"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/title", title=title)
    assert is_error and result["rule_id"] == "input.schema" and "title" in result["reason"], result
    assert nothing_pushed_or_recorded(settings, "agent/title")


async def test_a_body_with_closed_comments_and_a_non_latin_title_is_accepted(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/template"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/template", title="Ratio d'endettement — 負債比率", body="<!-- what changed -->\nAdds a ratio.\n<details><summary>why</summary>\nIncome and debt interact.\n</details>\n", dry_run=True)
    assert not is_error and result["title"] == "Ratio d'endettement — 負債比率" and result["description"].startswith("<!-- what changed -->")


@pytest.mark.parametrize("branch", HOSTILE)
async def test_hostile_branch_names_are_refused_with_no_side_effect(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, branch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(settings.workspace)
    run_id = make_run(mlflow_client, repo, commit_on(repo, "work"))
    refs = repo.text("for-each-ref")
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch=branch)
    assert is_error and result["rule_id"] in ("pr.branch_allowed", "input.schema", "role.agents_cannot_touch_main")
    assert ("is protected" in result["reason"]) == (branch == "main"), result  # --upload-pack=... is refused as a name, not as main
    assert repo.text("for-each-ref") == refs and nothing_pushed_or_recorded(settings, "main")
    assert not (settings.workspace / "MARK").exists() and not (settings.state_dir / "MARK").exists()


async def test_planted_hooks_and_filters_never_run_during_open_pr(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, tmp_path: Path) -> None:
    marker = tmp_path / "MARK"
    for name in ("pre-push", "reference-transaction", "post-checkout", "pre-commit"):
        hook = repo.path / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
        hook.chmod(0o755)
    repo.run("config", "core.fsmonitor", f"touch {marker}")
    repo.run("config", "filter.evil.process", f"touch {marker}")
    (repo.path / ".git" / "info").mkdir(exist_ok=True)
    (repo.path / ".git" / "info" / "attributes").write_text("* filter=evil diff=evil\n")
    repo.run("config", "diff.evil.textconv", f"touch {marker}; cat")
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/planted"))
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/planted")
    assert not is_error, result
    assert not marker.exists()


# --- a branch that moves while the PR is being opened -----------------------------------------


def _context(ports: Ports) -> CallContext:
    return CallContext(principal=ports.settings.local, transport="memory", ports=ports, config=ports.standards.policy_config())


async def test_a_branch_created_elsewhere_after_the_check_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    commit = commit_on(repo, "work")
    other = commit_on(repo, "other", "src/other.py", "x = 1\n")
    run_id = make_run(mlflow_client, repo, commit)
    request = OpenPrInput(run_id=run_id, title="Debt ratio", branch="agent/raced")
    ctx = _context(ports)
    facts = gather(request, ctx)
    assert facts["branch_head"] is None
    repo.run("update-ref", "refs/heads/agent/raced", other)
    with pytest.raises(GitRefused) as refused:
        await execute(request, facts, ctx)
    assert refused.value.rule_id == "pr.branch_moved" and nothing_pushed_or_recorded(settings, "agent/raced")


class RacingProvider:
    """The real local provider, with another writer moving the remote branch right after our push."""

    def __init__(self, inner: Any, repo: GitRepo, other: str) -> None:
        self.inner, self.repo, self.other, self.name = inner, repo, other, inner.name

    def push(self, commit: str, branch: str) -> None:
        self.inner.push(commit, branch)
        self.repo.run("push", "-q", "--force", "--", str(self.inner.remote_path), f"{self.other}:refs/heads/{branch}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_remote_branch_moved_after_the_push_is_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    commit = commit_on(repo, "agent/contested")
    other = commit_on(repo, "other", "src/other.py", "x = 1\n")
    run_id = make_run(mlflow_client, repo, commit)
    ports.prs = RacingProvider(ports.prs, repo, other)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/contested")
    assert is_error and result["rule_id"] == "pr.branch_moved" and "remote" in result["reason"]
    assert records(settings) == [] and audit(settings)[-1]["status"] == "failed"


@pytest.mark.parametrize(
    "body",
    [
        "##  mlgate provenance", "## mlgate  provenance", "## MLGATE provenance", "## mlgate\u200bprovenance", "## mlgate<b></b> provenance",
        "## mlgate&nbsp;provenance", "## \uff4dlgate provenance", "**mlgate-run-id:** 0123", "mlgate\u2010run\u2010id: 0123", "> mlgate_commit : abc",
    ],
    ids=["two-spaces-before", "two-spaces-between", "upper-case", "zero-width", "empty-tag", "entity", "fullwidth-m", "bold-trailer", "unicode-hyphens", "quoted-trailer"],
)
def test_mlgates_heading_and_trailers_are_recognised_however_spelled(body: str) -> None:
    assert "imitates mlgate's provenance block" in (body_problem(f"Adds a ratio.\n\n{body}\n") or "")


def test_a_body_that_merely_mentions_mlgate_or_provenance_is_accepted() -> None:
    assert body_problem("Adds a ratio; mlgate checks the run. Data provenance: bureau feed v3.\nSee commit abc for run ids.") is None


@pytest.mark.parametrize("plant", ["fifo", "not-json", "not-a-record"])
async def test_a_pr_record_that_cannot_be_read_refuses_the_call_before_anything_is_pushed(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, plant: str) -> None:
    """The state directory is the stdio agent's to write: a FIFO there must not hang open_pr (and
    every later one, under the records' lock), and a broken record must not be skipped."""
    prs = settings.state_dir / "prs"
    prs.mkdir(parents=True, exist_ok=True)
    planted = prs / "local-9.json"
    if plant == "fifo":
        os.mkfifo(planted)
    else:
        planted.write_text("{not json" if plant == "not-json" else '{"provider": "local"}')
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/planted"))
    with anyio.fail_after(60):
        async with connect(settings, ports) as client:
            is_error, result = await open_pr(client, run_id, branch="agent/planted")
    assert is_error and result["rule_id"] == "pr.records_readable" and "local-9.json" in result["reason"]
    assert not ((settings.state_dir / "remote.git" / "HEAD").is_file() and remote(settings).branch_head("agent/planted"))
    assert repo.branch_head("agent/planted") is not None  # the agent's own branch, made by commit_on, is left alone


async def test_a_rejected_push_leaves_no_local_branch_the_call_created(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    first = make_run(mlflow_client, repo, commit_on(repo, "work1"))
    async with connect(settings, ports) as client:
        assert not (await open_pr(client, first, branch="agent/x"))[0]
    repo.run("branch", "-D", "agent/x")  # the remote branch stays at the first commit
    second = commit_on(repo, "work2", "src/other.py", "y = 2\n")
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, make_run(mlflow_client, repo, second), branch="agent/x")
    assert is_error and result["rule_id"] == "pr.push" and "rejected" in result["reason"]
    assert repo.branch_head("agent/x") is None and remote(settings).branch_head("agent/x") != second
