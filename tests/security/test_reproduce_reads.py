"""Attacks on reproduce's reads of a past commit by an agent with its own shell: a smudge filter
reached through a config include that only applies inside a worktree (`includeIf "gitdir:"`),
which the server's inert overrides, read in the workspace itself, never see. The files of the
commit must be read without running it.

Real git, the agent's own .git/config and include file, the real Worktrees adapter.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.git import GitRepo
from server.worktree import Worktrees
from tools.errors import IntegrityError


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "ws")
    (repo.path / "src").mkdir()
    (repo.path / "src/features.py").write_text("VERSION = 1\n")
    (repo.path / ".gitattributes").write_text("*.py filter=evil\n")
    repo.commit_all("first")
    return repo


def test_a_smudge_filter_included_only_inside_worktrees_never_runs(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    (repo.path / ".git" / "evil.cfg").write_text(f'[filter "evil"]\n\tsmudge = "touch {marker} && cat"\n')
    with (repo.path / ".git" / "config").open("a") as handle:
        handle.write('[includeIf "gitdir:**/worktrees/**"]\n\tpath = evil.cfg\n')
    files = Worktrees(repo).read_files(repo.head() or "", ["src/features.py", "configs/missing.yaml"])
    assert files == {"src/features.py": b"VERSION = 1\n", "configs/missing.yaml": None} and not marker.exists()


def test_the_stored_bytes_are_read_whatever_the_commit_attributes_convert(repo: GitRepo, tmp_path: Path) -> None:
    (repo.path / ".gitattributes").write_text("*.py text eol=crlf ident\n")
    (repo.path / "src/features.py").write_text("# $Id$\nVERSION = 2\n")
    commit = repo.commit_all("attributes that rewrite files on checkout")
    files = Worktrees(repo).read_files(commit, ["src/features.py"])
    assert files == {"src/features.py": b"# $Id$\nVERSION = 2\n"}


@pytest.mark.parametrize("relpath", ["lnk/features.py", "src/features.py/x", "src"])
def test_a_path_through_a_committed_link_file_or_directory_is_refused(repo: GitRepo, tmp_path: Path, relpath: str) -> None:
    os.symlink("src", repo.path / "lnk")
    commit = repo.commit_all("a linked directory")
    with pytest.raises(IntegrityError):
        Worktrees(repo).read_files(commit, [relpath])
