"""History the agent rewrites locally, with plain git, must not change what the server reads: a
replace ref (`git replace GOOD CHEAT`) would show CHEAT's tree under GOOD's id to every read while a
push sends GOOD; a grafts file would give a commit invented parents. Real git, a real workspace."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.git import GitRepo
from tools.provenance import sha256_bytes
from tools.run_pins import dirtiness

FEATURES = "src/features.py"
BENIGN = "\n# a benign tweak\n"
CHEAT = "\ndef cheat(frame):\n    return frame.iloc[:, :1]\n"


def git(workspace: Path, *args: str) -> str:
    """The agent's own git, with its own defaults (replace refs and grafts honoured)."""
    argv = ["git", "-c", "user.name=agent", "-c", "user.email=agent@localhost", *args]
    return subprocess.run(argv, cwd=workspace, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def replaced(workspace: Path) -> tuple[GitRepo, str, bytes]:
    """GOOD (benign) committed on an agent branch, then replaced by CHEAT, whose features.py is
    left in the work tree: the agent's `git status` reads clean. Returns (repo, GOOD, GOOD's bytes)."""
    path = workspace / FEATURES
    git(workspace, "checkout", "-q", "-b", "agent/x")
    original = path.read_text()
    path.write_text(original + BENIGN)
    git(workspace, "commit", "-qam", "benign")
    good, good_bytes = git(workspace, "rev-parse", "HEAD"), path.read_bytes()
    path.write_text(original + CHEAT)
    git(workspace, "add", FEATURES)
    cheat = git(workspace, "commit-tree", git(workspace, "write-tree"), "-p", "HEAD~1", "-m", "cheat")
    git(workspace, "replace", good, cheat)
    assert git(workspace, "status", "--porcelain") == "" and git(workspace, "show", f"{good}:{FEATURES}").endswith(CHEAT.rstrip())
    return GitRepo(workspace), good, good_bytes


def test_a_replace_ref_does_not_change_the_blobs_read_at_a_commit(replaced: tuple[GitRepo, str, bytes]) -> None:
    repo, good, good_bytes = replaced
    assert repo.blob_at(good, FEATURES) == good_bytes


def test_a_run_of_the_replacing_code_is_dirty_against_the_replaced_commit(replaced: tuple[GitRepo, str, bytes]) -> None:
    repo, good, _ = replaced
    used = {FEATURES: sha256_bytes((repo.path / FEATURES).read_bytes())}
    assert dirtiness(repo, good, used, overridden=False) == {"git_dirty": True, "dirty_files": [FEATURES]}
    assert repo.is_dirty()


def test_a_replace_ref_does_not_change_the_diff_a_pr_is_checked_on(replaced: tuple[GitRepo, str, bytes]) -> None:
    repo, good, _ = replaced
    added = repo.added_lines(repo.resolve("main") or "", good)
    assert [text for _, text in added[FEATURES]] == ["", "# a benign tweak"]


def test_a_grafted_parent_does_not_make_a_commit_reachable(workspace: Path) -> None:
    main = git(workspace, "rev-parse", "HEAD")
    git(workspace, "checkout", "-q", "--orphan", "agent/elsewhere")
    git(workspace, "commit", "-qm", "unrelated history")
    stray = git(workspace, "rev-parse", "HEAD")
    (workspace / ".git/info").mkdir(exist_ok=True)
    (workspace / ".git/info/grafts").write_text(f"{main} {stray}\n")
    assert subprocess.run(["git", "merge-base", "--is-ancestor", stray, main], cwd=workspace).returncode == 0
    assert not GitRepo(workspace).is_ancestor(stray, main)
