"""Attacks through a submodule by an agent with its own shell: the submodule's own config (which
the server's inert overrides never read) names a clean filter or a remote that runs a command.
Reading the workspace status and pushing a PR branch must never start git in the submodule.

Real git: the agent's own `git submodule add` and `git config` calls, a real bare remote.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from server.git import GitRepo
from tests.security.git_tricks import rewrite_same_size


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "protocol.file.allow=always", "-c", "user.name=agent", "-c", "user.email=agent@localhost", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def workspace_with_submodule(tmp_path: Path) -> GitRepo:
    lib = GitRepo.init(tmp_path / "lib")
    (lib.path / "x.txt").write_text("x\n")
    lib.commit_all("lib")
    repo = GitRepo.init(tmp_path / "ws")
    (repo.path / "a.txt").write_text("a\n")
    repo.commit_all("first")
    _git(repo.path, "submodule", "add", "-q", str(lib.path), "sub")
    _git(repo.path, "commit", "-q", "-m", "add sub")
    return repo


def test_a_submodule_clean_filter_never_runs_when_the_workspace_status_is_read(workspace_with_submodule: GitRepo, tmp_path: Path) -> None:
    sub, marker = workspace_with_submodule.path / "sub", tmp_path / "PWNED"
    _git(sub, "config", "filter.evil.clean", f"touch {marker}; cat")
    (sub / ".gitattributes").write_text("* filter=evil\n")
    rewrite_same_size(sub / "x.txt", "y\n")
    workspace_with_submodule.is_dirty()
    assert not marker.exists()


def test_a_submodule_moved_to_another_commit_still_makes_the_workspace_dirty(workspace_with_submodule: GitRepo) -> None:
    sub = workspace_with_submodule.path / "sub"
    assert not workspace_with_submodule.is_dirty()
    (sub / "x.txt").write_text("moved\n")
    _git(sub, "commit", "-q", "-am", "move")
    assert workspace_with_submodule.is_dirty()


def test_a_push_never_recurses_into_a_submodule_whose_remote_runs_a_command(workspace_with_submodule: GitRepo, tmp_path: Path) -> None:
    repo, sub, marker = workspace_with_submodule, workspace_with_submodule.path / "sub", tmp_path / "PWNED"
    (sub / "x.txt").write_text("z\n")
    _git(sub, "commit", "-q", "-am", "unpushed submodule commit")
    _git(sub, "config", "remote.origin.url", f"ext::sh -c touch% {marker}")
    _git(sub, "config", "protocol.ext.allow", "always")
    _git(repo.path, "config", "push.recurseSubmodules", "on-demand")
    head = repo.commit_paths(["sub"], "bump sub")
    remote = GitRepo.init_bare(tmp_path / "remote.git")
    repo.push(str(remote.path), head, "agent/sub")
    assert not marker.exists() and remote.branch_head("agent/sub") == head


def test_a_diff_never_starts_git_inside_a_submodule_whose_config_runs_a_command(workspace_with_submodule: GitRepo, tmp_path: Path) -> None:
    repo, sub, marker = workspace_with_submodule, workspace_with_submodule.path / "sub", tmp_path / "PWNED"
    base = repo.head() or ""
    (sub / "x.txt").write_text("model.fit(X)\n")
    _git(sub, "commit", "-q", "-am", "training in the submodule")
    head = repo.commit_paths(["sub"], "bump sub")
    (sub / ".gitattributes").write_text("* diff=evil\n")
    _git(sub, "config", "diff.evil.textconv", f"sh -c 'touch {marker}; cat \"$1\"' -")
    _git(sub, "config", "diff.external", f"sh -c 'touch {marker}'")
    _git(repo.path, "config", "diff.submodule", "diff")
    assert repo.changed_paths(base, head) == ["sub"] and repo.added_lines(base, head)["sub"][0][1].startswith("Subproject commit ")
    repo.staged_added_lines()
    assert not marker.exists()
