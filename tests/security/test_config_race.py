"""Attacks on the inert overrides by an agent with its own shell that rewrites .git/config in a
loop: the server reads the config, makes every program it names inert, then runs git, which reads
the file again. A clean filter that appears in between must not run when run_experiment reads
whether the workspace is dirty.

The race is made deterministic: RacedRepo answers `local_config` with the config as it was before
the agent's edit (what the server read), while git reads the edited file (what it reads a moment
later). Real git, real files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.git import GitRepo
from tests.security.git_tricks import rewrite_same_size
from tools.errors import GitRefused


class RacedRepo(GitRepo):
    def __init__(self, path: Path, before: list[tuple[str, str]]) -> None:
        super().__init__(path)
        self._before = before

    def local_config(self) -> list[tuple[str, str]]:
        return list(self._before)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "ws")
    (repo.path / "a.txt").write_text("one\n")
    (repo.path / ".gitattributes").write_text("* filter=evil\n")
    repo.commit_all("first")
    return repo


def test_a_clean_filter_added_after_the_server_read_the_config_never_runs(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    raced = RacedRepo(repo.path, repo.local_config())
    repo.run("config", "filter.evil.clean", f"touch {marker} && cat")
    rewrite_same_size(repo.path / "a.txt", "one\n")
    assert raced.is_dirty() is False and not marker.exists()
    rewrite_same_size(repo.path / "a.txt", "two\n")
    assert raced.is_dirty() is True and not marker.exists()


@pytest.mark.parametrize("change", ["edit", "delete", "mode", "stage", "link"])
def test_every_kind_of_tracked_change_reads_as_dirty(repo: GitRepo, change: str) -> None:
    path = repo.path / "a.txt"
    assert not repo.is_dirty()
    if change == "edit":
        path.write_text("two\n")
    elif change == "delete":
        path.unlink()
    elif change == "mode":
        path.chmod(0o755)
    elif change == "link":
        path.unlink()
        os.symlink("one", path)
    else:
        (repo.path / "b.txt").write_text("new\n")
        repo.run("add", "--", "b.txt")
    assert repo.is_dirty()


def test_a_tracked_file_replaced_by_a_pipe_reads_as_dirty_without_waiting(repo: GitRepo) -> None:
    (repo.path / "a.txt").unlink()
    os.mkfifo(repo.path / "a.txt")
    assert repo.is_dirty()


def test_a_tracked_file_reached_through_a_linked_directory_reads_as_dirty(repo: GitRepo, tmp_path: Path) -> None:
    (repo.path / "src").mkdir()
    (repo.path / "src" / "features.py").write_text("x = 1\n")
    repo.commit_all("src")
    copy = tmp_path / "copy"
    (repo.path / "src").rename(copy)
    os.symlink(copy, repo.path / "src")
    assert repo.is_dirty()


@pytest.mark.parametrize("transport", ["ext", "ssh"])
def test_a_push_redirected_after_the_check_never_runs_a_command(repo: GitRepo, tmp_path: Path, transport: str) -> None:
    marker, remote = tmp_path / "PWNED", GitRepo.init_bare(tmp_path / "remote.git")
    raced = RacedRepo(repo.path, repo.local_config())
    if transport == "ext":
        repo.run("config", "protocol.ext.allow", "always")
        repo.run("config", f"url.ext::sh -c touch% {marker}.insteadOf", str(remote.path))
    else:
        repo.run("config", "core.sshCommand", f"touch {marker}; false")
        repo.run("config", f"url.ssh://git@example.invalid/r.git.insteadOf", str(remote.path))
    try:
        raced.push(str(remote.path), repo.head() or "", "agent/x")
    except GitRefused:
        pass  # refused or failed: either way nothing ran
    assert not marker.exists()
