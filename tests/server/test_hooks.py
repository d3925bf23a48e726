"""The workspace hooks `mlgate init` installs, exercised by committing and merging with real git in
a real workspace (the hook scripts run `python -I -m server.cli hook NAME`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.approvals import ApprovalStore
from server.cli import main
from server.git import GitRepo
from server.pr_providers import LocalProvider, PrRecords
from server.settings import load_settings
from tests.mlflow_store import client_with_experiment, sqlite_uri

IDENTITY = ("-c", "user.name=Reviewer", "-c", "user.email=reviewer@bank.example")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def tracking_uri(store: Path) -> str:
    return sqlite_uri(store)


@pytest.fixture(scope="module")
def mlflow_client(tracking_uri: str, store: Path) -> Any:
    return client_with_experiment(store, "hooks")


@pytest.fixture
def env(tracking_uri: str) -> dict[str, str]:
    """The environment of a developer's git: no global config, the test's MLflow store."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLGATE_"))}
    return {**clean, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "MLGATE_TRACKING_URI": tracking_uri}


def git(workspace: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *IDENTITY, *args], cwd=workspace, env=env, capture_output=True, text=True, check=False)


def head(workspace: Path) -> str:
    return GitRepo(workspace).head() or ""


def append(workspace: Path, relpath: str, text: str) -> None:
    path = workspace / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((path.read_text() if path.exists() else "") + text)


def commit(workspace: Path, env: dict[str, str], *paths: str, all_tracked: bool = False) -> subprocess.CompletedProcess[str]:
    if paths:
        git(workspace, env, "add", "--", *paths)
    return git(workspace, env, "commit", "-q", *(["-a"] if all_tracked else []), "-m", "work")


# --- installation ---------------------------------------------------------------------------


def test_init_installs_the_hooks(workspace: Path) -> None:
    repo = GitRepo(workspace)
    assert repo.text("config", "--local", "core.hooksPath") == ".githooks" and repo.text("config", "--local", "branch.main.mergeOptions") == "--no-ff"
    for name in ("pre-commit", "pre-merge-commit"):
        assert os.access(workspace / ".githooks" / name, os.X_OK)
        assert repo.text("ls-files", "-s", "--", f".githooks/{name}").startswith("100755")
    assert (workspace / ".pre-commit-config.yaml").is_file()


# --- pre-commit -----------------------------------------------------------------------------


def test_a_clean_change_commits(workspace: Path, env: dict[str, str]) -> None:
    before = head(workspace)
    append(workspace, "src/features.py", "\n\ndef ratio(frame):\n    return frame.a / frame.b\n")
    result = commit(workspace, env, "src/features.py")
    assert result.returncode == 0, result.stderr
    assert head(workspace) != before


@pytest.mark.parametrize(
    "line",
    ["    return StandardScaler().fit(frame)\n", "    booster.train (params)\n", "    clf.partial_fit(X, y)\n", "import mlflow\nmlflow.start_run()\n", "mlflow.log_metric('auc', 1.0)\n"],
)
def test_training_calls_are_refused(workspace: Path, env: dict[str, str], line: str) -> None:
    before = head(workspace)
    append(workspace, "src/features.py", line)
    result = commit(workspace, env, "src/features.py")
    assert result.returncode != 0 and "training guard" in result.stderr and "src/features.py:" in result.stderr
    assert head(workspace) == before


def test_training_calls_in_excluded_paths_are_allowed(workspace: Path, env: dict[str, str]) -> None:
    append(workspace, "docs/notes.md", "We never call model.fit( here; mlgate trains.\n")
    assert commit(workspace, env, "docs/notes.md").returncode == 0


def test_commit_all_is_checked_through_git_temporary_index(workspace: Path, env: dict[str, str]) -> None:
    before = head(workspace)
    append(workspace, "src/features.py", "model.fit(frame)\n")
    result = commit(workspace, env, all_tracked=True)
    assert result.returncode != 0 and "training guard" in result.stderr and head(workspace) == before


def test_a_protected_field_change_is_refused(workspace: Path, env: dict[str, str]) -> None:
    path = workspace / "configs/experiment.yaml"
    path.write_text(path.read_text().replace("test_size: 0.2", "test_size: 0.3"))
    result = commit(workspace, env, "configs/experiment.yaml")
    assert result.returncode != 0 and "split.test_size" in result.stderr and "propose_config_change" in result.stderr


def test_an_approved_protected_value_commits(workspace: Path, env: dict[str, str]) -> None:
    ApprovalStore(load_settings(workspace).state_dir).set_in_force({"split.test_size": "0.3"})
    path = workspace / "configs/experiment.yaml"
    path.write_text(path.read_text().replace("test_size: 0.2", "test_size: 0.3"))
    assert commit(workspace, env, "configs/experiment.yaml").returncode == 0


def test_a_config_that_fails_the_schema_is_refused(workspace: Path, env: dict[str, str]) -> None:
    path = workspace / "configs/experiment.yaml"
    path.write_text(path.read_text().replace("  seed: 42", "  seed: \"42\"\n  Seed: 1"))
    result = commit(workspace, env, "configs/experiment.yaml")
    assert result.returncode != 0 and "experiment.seed" in result.stderr and "unknown field" in result.stderr


def test_a_reasoning_file_that_fails_the_schema_is_refused(workspace: Path, env: dict[str, str]) -> None:
    (workspace / "configs/reasoning.yaml").write_text("hypothesis_category: Bad Category\n")
    result = commit(workspace, env, "configs/reasoning.yaml")
    assert result.returncode != 0 and "configs/reasoning.yaml" in result.stderr


def test_a_standards_change_is_checked_against_itself(workspace: Path, env: dict[str, str]) -> None:
    for relpath in ("configs/project_standards.yaml", "configs/experiment.yaml"):
        path = workspace / relpath
        path.write_text(path.read_text().replace("test_size: 0.2", "test_size: 0.25"))
    result = commit(workspace, env, "configs/project_standards.yaml", "configs/experiment.yaml")
    assert result.returncode == 0 and "mlgate standards accept" in result.stderr  # the server will want an acknowledgement


def test_a_standards_change_alone_gets_the_operator_advice_not_the_agent_path(workspace: Path, env: dict[str, str]) -> None:
    path = workspace / "configs/project_standards.yaml"
    path.write_text(path.read_text().replace("target: default", "target: bad_loan"))
    result = commit(workspace, env, "configs/project_standards.yaml")
    assert result.returncode != 0 and "data.target" in result.stderr
    assert "mlgate standards set" in result.stderr and "propose_config_change" not in result.stderr


# --- pre-merge-commit and verify-pr ---------------------------------------------------------


def make_run(client: Any, commit_id: str, *, dirty: str = "false") -> str:
    experiment = client.get_experiment_by_name("hooks")
    run_id = client.create_run(experiment.experiment_id).info.run_id
    client.log_param(run_id, "git_commit", commit_id)
    client.log_param(run_id, "git_dirty", dirty)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def agent_work(workspace: Path, env: dict[str, str], branch: str, client: Any, *, record: bool = True) -> str:
    """A commit on `branch` and (when `record`) a PR record citing a run of it."""
    assert git(workspace, env, "checkout", "-q", "-b", branch).returncode == 0
    append(workspace, "src/features.py", f"\n# {branch}\n")
    assert commit(workspace, env, "src/features.py").returncode == 0
    commit_id = head(workspace)
    git(workspace, env, "checkout", "-q", "main")
    if record:
        settings = load_settings(workspace)
        provider = LocalProvider(GitRepo(workspace), settings.state_dir / "remote.git", PrRecords(settings.state_dir / "prs"))
        draft = {"branch": branch, "base": "main", "commit": commit_id, "run_id": make_run(client, commit_id), "title": "t", "description": "d", "now": "2025-01-01T00:00:00Z"}
        provider.submit(draft)
    return commit_id


def test_merging_a_verified_pr_into_main_creates_a_merge_commit(workspace: Path, env: dict[str, str], mlflow_client: Any) -> None:
    work = agent_work(workspace, env, "agent/good", mlflow_client)
    result = git(workspace, env, "merge", "--no-edit", "agent/good")
    assert result.returncode == 0, result.stderr
    assert GitRepo(workspace).text("rev-parse", "HEAD^2") == work


def test_merging_agent_work_without_a_pr_is_refused(workspace: Path, env: dict[str, str], mlflow_client: Any) -> None:
    before = head(workspace)
    agent_work(workspace, env, "agent/unreviewed", mlflow_client, record=False)
    result = git(workspace, env, "merge", "--no-edit", "agent/unreviewed")
    assert result.returncode != 0 and "no PR record" in result.stderr and head(workspace) == before
    concluded = git(workspace, env, "commit", "-q", "--no-edit")
    assert concluded.returncode != 0 and "no PR record" in concluded.stderr and head(workspace) == before


def test_merging_a_branch_that_moved_past_its_run_is_refused(workspace: Path, env: dict[str, str], mlflow_client: Any) -> None:
    before = head(workspace)
    agent_work(workspace, env, "agent/moved", mlflow_client)
    git(workspace, env, "checkout", "-q", "agent/moved")
    append(workspace, "src/features.py", "# after the run\n")
    commit(workspace, env, "src/features.py")
    git(workspace, env, "checkout", "-q", "main")
    result = git(workspace, env, "merge", "--no-edit", "agent/moved")
    assert result.returncode != 0 and "measured commit" in result.stderr and head(workspace) == before


@pytest.mark.parametrize("merged", ["agent/run-pr", "agent/working"])
def test_the_branch_an_agent_worked_on_does_not_block_merging_the_pr_branch_at_the_same_commit(workspace: Path, env: dict[str, str], mlflow_client: Any, merged: str) -> None:
    work = agent_work(workspace, env, "agent/run-pr", mlflow_client)
    git(workspace, env, "branch", "agent/working", work)  # open_pr made agent/run-pr where the agent worked on agent/working
    result = git(workspace, env, "merge", "--no-edit", merged)
    assert result.returncode == 0, result.stderr
    assert GitRepo(workspace).text("rev-parse", "HEAD^2") == work


def test_a_second_branch_at_a_commit_whose_pr_run_is_dirty_does_not_let_it_through(workspace: Path, env: dict[str, str], mlflow_client: Any) -> None:
    before = head(workspace)
    work = agent_work(workspace, env, "agent/working", mlflow_client, record=False)
    settings = load_settings(workspace)
    provider = LocalProvider(GitRepo(workspace), settings.state_dir / "remote.git", PrRecords(settings.state_dir / "prs"))
    git(workspace, env, "branch", "agent/run-dirty", work)
    draft = {"branch": "agent/run-dirty", "base": "main", "commit": work, "run_id": make_run(mlflow_client, work, dirty="true"), "title": "t", "description": "d", "now": "2025-01-01T00:00:00Z"}
    provider.submit(draft)
    result = git(workspace, env, "merge", "--no-edit", "agent/working")
    assert result.returncode != 0 and "dirty working tree" in result.stderr and "agent/working: no PR record" in result.stderr
    assert head(workspace) == before


def test_merging_work_that_is_no_agent_pr_is_not_checked(workspace: Path, env: dict[str, str]) -> None:
    git(workspace, env, "checkout", "-q", "-b", "feature/human")
    append(workspace, "src/features.py", "# human work\n")
    commit(workspace, env, "src/features.py")
    git(workspace, env, "checkout", "-q", "main")
    assert git(workspace, env, "merge", "--no-edit", "feature/human").returncode == 0


def test_verify_pr_reports_each_problem_with_exit_status(workspace: Path, env: dict[str, str], mlflow_client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLGATE_TRACKING_URI", env["MLGATE_TRACKING_URI"])
    agent_work(workspace, env, "agent/checked", mlflow_client)
    agent_work(workspace, env, "agent/bare", mlflow_client, record=False)
    assert main(["verify-pr", "agent/checked", "--workspace", str(workspace)]) == 0
    assert main(["verify-pr", "agent/bare", "--workspace", str(workspace)]) == 1
    assert main(["verify-pr", "main", "--workspace", str(workspace)]) == 1
    err = capsys.readouterr().err
    assert "no PR record" in err and "branch names must be" in err
    assert err.count("what to do: do not merge") == 1  # the unbacked branch, not the refused name
