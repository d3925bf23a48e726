from pathlib import Path

from server.git import GitRepo
from server.standards import STANDARDS_PATH, StandardsSource, read_branch_sha


def _commit_min_metric(workspace: Path, value: str) -> None:
    path = workspace / STANDARDS_PATH
    path.write_text(path.read_text().replace("min_primary_metric: 0.70", f"min_primary_metric: {value}"))
    GitRepo(workspace).commit_all("raise the bar")


def test_standards_come_from_the_protected_ref_not_the_working_tree(workspace: Path) -> None:
    source = StandardsSource(GitRepo(workspace), "main")
    (workspace / STANDARDS_PATH).write_text((workspace / STANDARDS_PATH).read_text().replace("0.70", "0.10"))
    config = source.policy_config()
    assert config["standards"]["gates"]["min_primary_metric"] == 0.7
    assert config["standards_drift"] is True


def test_a_new_commit_on_main_is_seen_by_the_next_call(workspace: Path) -> None:
    source = StandardsSource(GitRepo(workspace), "main")
    assert source.policy_config()["standards"]["gates"]["min_primary_metric"] == 0.7
    _commit_min_metric(workspace, "0.80")
    config = source.policy_config()
    assert config["standards"]["gates"]["min_primary_metric"] == 0.8 and config["standards_drift"] is False


def test_packed_refs_are_read_like_loose_refs(workspace: Path) -> None:
    repo = GitRepo(workspace)
    head = repo.head()
    repo.run("pack-refs", "--all")
    assert read_branch_sha(workspace / ".git", "main") == head
    assert StandardsSource(repo, "main").policy_config()["standards"]["gates"]["min_primary_metric"] == 0.7


def test_a_caller_mutating_its_config_cannot_change_the_next_one(workspace: Path) -> None:
    source = StandardsSource(GitRepo(workspace), "main")
    source.policy_config()["standards"]["gates"]["min_primary_metric"] = 0.0
    assert source.policy_config()["standards"]["gates"]["min_primary_metric"] == 0.7
