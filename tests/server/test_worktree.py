"""Files at past commits of a real repository, read from git's object store: as they were at the
commit, nothing planted in the workspace runs, links and oversize files are refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.git import GitRepo
from server.worktree import MAX_FILE_BYTES, Worktrees
from tools.errors import GitRefused, IntegrityError


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "ws")
    (repo.path / "src").mkdir()
    (repo.path / "src/features.py").write_text("VERSION = 1\n")
    repo.commit_all("first")
    return repo


@pytest.fixture
def worktrees(repo: GitRepo) -> Worktrees:
    return Worktrees(repo)


def listed(repo: GitRepo) -> int:
    return len(repo.text("worktree", "list", "--porcelain").split("\n\n"))


def test_files_are_read_as_they_were_at_the_commit(repo: GitRepo, worktrees: Worktrees) -> None:
    first = repo.head() or ""
    (repo.path / "src/features.py").write_text("VERSION = 2\n")
    repo.commit_all("second")
    (repo.path / "src/features.py").write_text("VERSION = 3 (uncommitted)\n")
    assert worktrees.read_files(first, ["src/features.py", "configs/missing.yaml"]) == {"src/features.py": b"VERSION = 1\n", "configs/missing.yaml": None}
    assert (repo.path / "src/features.py").read_text() == "VERSION = 3 (uncommitted)\n"


def test_a_committed_symlink_is_refused_not_followed(repo: GitRepo, worktrees: Worktrees, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("server secret\n")
    (repo.path / "src/features.py").unlink()
    os.symlink(secret, repo.path / "src/features.py")
    commit = repo.commit_all("features is a link")
    with pytest.raises(IntegrityError, match="symbolic link"):
        worktrees.read_files(commit, ["src/features.py"])
    assert listed(repo) == 1


@pytest.mark.parametrize("commit", ["HEAD", "main", "--detach", "a" * 39, "../" + "a" * 37])
def test_a_commit_that_is_not_a_full_id_is_refused(repo: GitRepo, worktrees: Worktrees, commit: str) -> None:
    with pytest.raises(GitRefused):
        worktrees.read_files(commit, ["src/features.py"])
    assert listed(repo) == 1


def test_planted_checkout_hooks_never_run(repo: GitRepo, worktrees: Worktrees, tmp_path: Path) -> None:
    marker = tmp_path / "MARK"
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    (repo.path / ".gitattributes").write_text("*.py filter=evil\n")
    repo.commit_all("attributes")
    repo.run("config", "filter.evil.smudge", f"touch {marker}; cat")
    assert worktrees.read_files(repo.head() or "", ["src/features.py"]) == {"src/features.py": b"VERSION = 1\n"}
    assert not marker.exists()


@pytest.mark.parametrize("relpath", ["/etc/passwd", "../outside", "src/../../x", "src/x\n", ""])
def test_hostile_paths_are_refused(repo: GitRepo, worktrees: Worktrees, relpath: str) -> None:
    with pytest.raises(GitRefused):
        worktrees.read_files(repo.head() or "", [relpath])


def test_a_linked_directory_on_the_path_is_refused(repo: GitRepo, worktrees: Worktrees, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "features.py").write_text("x = 1\n")
    os.symlink(tmp_path / "elsewhere", repo.path / "lib")
    commit = repo.commit_all("lib is a link to a directory")
    with pytest.raises(IntegrityError, match="symbolic link"):
        worktrees.read_files(commit, ["lib/features.py"])


def test_an_oversize_file_is_refused(repo: GitRepo, worktrees: Worktrees) -> None:
    (repo.path / "src/big.py").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    commit = repo.commit_all("big")
    with pytest.raises(IntegrityError, match=f"over {MAX_FILE_BYTES} bytes"):
        worktrees.read_files(commit, ["src/big.py"])
    (repo.path / "src/big.py").write_bytes(b"x" * MAX_FILE_BYTES)
    assert len(worktrees.read_files(repo.commit_all("just fits"), ["src/big.py"])["src/big.py"] or b"") == MAX_FILE_BYTES
