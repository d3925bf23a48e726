"""The hardened git adapter on real repositories: nothing planted in a workspace ever runs in the
server, hostile refs never reach git, main is never written."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from server.git import GitRepo, parse_added_lines
from tools.errors import GitRefused

HOSTILE_BRANCHES = ["--upload-pack=touch MARK", "-c x=y", "main", "a..b", "agent/a..b", "@{-1}", "agent/@{-1}", "x\ny", "agent/x\ny", "a" * 300, "agent/" + "a" * 300]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "ws")
    (repo.path / "a.txt").write_text("one\n")
    repo.commit_all("first")
    return repo


def _executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _append_config(repo: GitRepo, text: str) -> None:
    with (repo.path / ".git" / "config").open("a") as handle:
        handle.write(text)


def _exercise(repo: GitRepo) -> None:
    """Every kind of call the server makes on a workspace."""
    (repo.path / "a.txt").write_text("one\ntwo\n")
    repo.is_dirty()
    first = repo.head()
    second = repo.commit_all("second")
    repo.commit_paths(["a.txt"], "nothing new") if repo.is_dirty() else None
    repo.show("main", "a.txt")
    repo.changed_paths(repo.text("rev-parse", "HEAD~1"), second)
    repo.added_lines(repo.text("rev-parse", "HEAD~1"), second)
    assert first != second


def test_planted_hooks_never_run(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "MARK"
    for name in ("pre-commit", "commit-msg", "post-commit", "post-checkout", "reference-transaction", "post-index-change"):
        _executable(repo.path / ".git" / "hooks" / name, f"touch {marker}")
    _executable(repo.path / "evil-hooks" / "pre-commit", f"touch {marker}")
    repo.run("config", "core.hooksPath", "evil-hooks")
    _exercise(repo)
    assert repo.create_branch("agent/x", repo.head() or "")
    assert not marker.exists()


def test_planted_fsmonitor_never_runs(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "MARK"
    hook = _executable(tmp_path / "fsmonitor", f"touch {marker}")
    repo.run("config", "core.fsmonitor", str(hook))
    _exercise(repo)
    assert not marker.exists()


@pytest.mark.parametrize("driver", ["evil", "e=v.il", "x.y"])
def test_planted_filter_driver_never_runs_and_content_is_stored_raw(repo: GitRepo, tmp_path: Path, driver: str) -> None:
    marker = tmp_path / "MARK"
    _append_config(repo, f'[filter "{driver}"]\n\tclean = touch {marker}; cat\n\tsmudge = touch {marker}; cat\n\tprocess = touch {marker}\n\trequired = true\n')
    (repo.path / ".gitattributes").write_text(f"* filter={driver}\n")
    _exercise(repo)
    repo.run("checkout", "-q", "HEAD~1")
    assert not marker.exists()
    assert repo.show("main", "a.txt") == b"one\ntwo\n"


def test_filter_from_an_included_config_file_never_runs(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "MARK"
    included = tmp_path / "extra.config"
    included.write_text(f'[filter "inc"]\n\tclean = touch {marker}; cat\n\tprocess = touch {marker}\n')
    _append_config(repo, f"[include]\n\tpath = {included}\n")
    (repo.path / ".gitattributes").write_text("* filter=inc\n")
    _exercise(repo)
    assert not marker.exists()


def test_textconv_external_diff_gpg_and_pager_never_run(repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "MARK"
    program = _executable(tmp_path / "prog", f"touch {marker}; exit 1")
    _append_config(repo, f'[diff "evil"]\n\ttextconv = {program}\n\tcommand = {program}\n[diff]\n\texternal = {program}\n')
    _append_config(repo, f"[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = {program}\n[core]\n\tpager = {program}\n\teditor = {program}\n")
    (repo.path / ".gitattributes").write_text("* diff=evil\n")
    _exercise(repo)
    assert not marker.exists()


def test_server_git_environment_is_not_passed_to_git(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "MARK"
    program = _executable(tmp_path / "prog", f"touch {marker}")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(program))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.fsmonitor'='{program}'")
    _exercise(repo)
    assert not marker.exists()


def test_global_and_system_config_are_not_read(repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "MARK"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f"[core]\n\tfsmonitor = touch {marker}\n[filter \"g\"]\n\tprocess = touch {marker}\n")
    (repo.path / ".gitattributes").write_text("* filter=g\n")
    monkeypatch.setenv("HOME", str(home))
    _exercise(repo)
    assert not marker.exists()


@pytest.mark.parametrize("name", HOSTILE_BRANCHES)
def test_hostile_branch_names_are_refused_with_no_side_effect(repo: GitRepo, tmp_path: Path, name: str) -> None:
    remote = GitRepo.init_bare(tmp_path / "remote.git")
    refs_before = repo.text("for-each-ref")
    with pytest.raises(GitRefused):
        repo.create_branch(name, repo.head() or "")
    with pytest.raises(GitRefused):
        repo.push(str(remote.path), repo.head() or "", name)
    assert repo.text("for-each-ref") == refs_before and remote.text("for-each-ref") == ""
    assert not (repo.path / "MARK").exists() and not Path("MARK").exists()


@pytest.mark.parametrize("commit", ["HEAD", "main", "--all", "a" * 39, "A" * 40, "a" * 40 + "\n"])
def test_commit_arguments_must_be_full_ids(repo: GitRepo, commit: str) -> None:
    with pytest.raises(GitRefused):
        repo.create_branch("agent/x", commit)
    assert repo.branch_head("agent/x") is None


def test_create_branch_never_moves_an_existing_branch(repo: GitRepo) -> None:
    first = repo.head() or ""
    assert repo.create_branch("agent/x", first) is True
    (repo.path / "a.txt").write_text("changed\n")
    second = repo.commit_all("second")
    assert repo.create_branch("agent/x", second) is False
    assert repo.branch_head("agent/x") == first


def test_push_sends_exactly_the_commit_and_never_forces(repo: GitRepo, tmp_path: Path) -> None:
    remote = GitRepo.init_bare(tmp_path / "remote.git")
    marker = tmp_path / "MARK"
    for name in ("pre-receive", "update", "post-receive"):
        _executable(remote.path / "hooks" / name, f"touch {marker}")
    remote.run("config", "--unset", "core.hooksPath")
    first = repo.head() or ""
    repo.push(str(remote.path), first, "agent/x")
    (repo.path / "a.txt").write_text("two\n")
    second = repo.commit_all("second")
    repo.push(str(remote.path), second, "agent/x")
    assert remote.branch_head("agent/x") == second and remote.branch_head("main") is None
    repo.run("checkout", "-q", "-b", "other", first)
    (repo.path / "b.txt").write_text("other\n")
    diverged = repo.commit_all("diverged")
    with pytest.raises(GitRefused, match="rejected"):
        repo.push(str(remote.path), diverged, "agent/x")
    assert remote.branch_head("agent/x") == second
    assert not marker.exists()


def test_push_refuses_a_config_that_could_redirect_it(repo: GitRepo, tmp_path: Path) -> None:
    remote = GitRepo.init_bare(tmp_path / "remote.git")
    marker = tmp_path / "MARK"
    repo.run("config", f"url.ext::sh -c touch% {marker}.insteadOf", str(remote.path))
    with pytest.raises(GitRefused, match="redirect"):
        repo.push(str(remote.path), repo.head() or "", "agent/x")
    repo.run("config", "--remove-section", f"url.ext::sh -c touch% {marker}")
    repo.run("config", f"remote.{remote.path}.receivepack", f"touch {marker}; git-receive-pack")
    with pytest.raises(GitRefused, match="redirect"):
        repo.push(str(remote.path), repo.head() or "", "agent/x")
    assert not marker.exists() and remote.branch_head("agent/x") is None


def test_main_is_never_created_or_pushed(repo: GitRepo, tmp_path: Path) -> None:
    remote = GitRepo.init_bare(tmp_path / "remote.git")
    for name in ("main", "agent/../main", "refs/heads/main", "agent"):
        with pytest.raises(GitRefused):
            repo.push(str(remote.path), repo.head() or "", name)
    assert remote.text("for-each-ref") == ""


def test_reads_still_work_after_hardening(repo: GitRepo) -> None:
    head = repo.head()
    assert repo.resolve("main") == head and repo.branch_head("main") == head and repo.current_branch() == "main"
    assert repo.show("main", "a.txt") == b"one\n" and repo.show("main", "missing.txt") is None
    assert repo.has_commit(head or "") and not repo.has_commit("b" * 40)
    assert not repo.is_dirty()
    assert repo.branches_at(head or "") == [] and repo.create_branch("agent/here", head or "") and repo.branches_at(head or "") == ["agent/here"]


def test_added_lines_carry_new_file_line_numbers(repo: GitRepo) -> None:
    base = repo.head() or ""
    (repo.path / "a.txt").write_text("one\ninserted\n")
    (repo.path / "dir with space").mkdir()
    (repo.path / "dir with space" / "é.py").write_text("x = 1\nmodel.fit(X)\n")
    head = repo.commit_all("more")
    assert repo.added_lines(base, head) == {"a.txt": [(2, "inserted")], "dir with space/é.py": [(1, "x = 1"), (2, "model.fit(X)")]}
    assert sorted(repo.changed_paths(base, head)) == ["a.txt", "dir with space/é.py"]


def test_parse_added_lines_skips_deleted_files() -> None:
    patch = "diff --git gone.py gone.py\n--- gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\ndiff --git b.py b.py\n--- b.py\n+++ b.py\n@@ -3,0 +4,2 @@\n+y\n+z\n"
    assert parse_added_lines(patch) == {"b.py": [(4, "y"), (5, "z")]}


@pytest.mark.parametrize("header_like", ["++ notes.md", "++ /dev/null", "++ docs/x.md\t"])
def test_an_added_line_that_reads_like_a_file_header_stays_in_its_file(repo: GitRepo, header_like: str) -> None:
    """`++ x` added is `+++ x` in the patch: it must not move the lines after it to another file
    (one the guard excludes, or none), where a training call would go unscanned."""
    base = repo.head()
    (repo.path / "features.py").write_text(f'NOTE = """\n{header_like}\n"""\nmodel.fit(X)\n')
    head = repo.commit_all("hide a fit")
    assert repo.added_lines(base, head) == {"features.py": [(1, 'NOTE = """'), (2, header_like), (3, '"""'), (4, "model.fit(X)")]}


def test_blob_at_reads_the_stored_bytes_of_a_commit_whatever_the_working_tree_says(repo: GitRepo) -> None:
    commit = repo.head() or ""
    (repo.path / "a.txt").write_text("changed\n")
    repo.run("update-index", "--skip-worktree", "a.txt")
    assert repo.blob_at(commit, "a.txt") == b"one\n" and repo.blob_at(commit, "missing.txt") is None
    with pytest.raises(GitRefused):
        repo.blob_at(commit, "../a.txt")
    with pytest.raises(GitRefused):
        repo.blob_at("HEAD", "a.txt")


@pytest.mark.parametrize(
    "hide",
    [
        lambda repo: (repo.path / ".gitattributes").write_text("*.py -diff\n"),
        lambda repo: (repo.path / ".git" / "info" / "attributes").write_text("* binary\n"),
        lambda repo: _append_config(repo, "[core]\n\tbigFileThreshold = 1\n"),
    ],
    ids=["worktree-attributes", "info-attributes", "big-file-threshold"],
)
def test_added_lines_are_seen_in_files_the_workspace_marks_binary(repo: GitRepo, hide: Any) -> None:
    base = repo.head() or ""
    (repo.path / "model.py").write_text("x = 1\nmodel.fit(X)\n")
    head = repo.commit_all("train")
    (repo.path / ".git" / "info").mkdir(exist_ok=True)
    hide(repo)
    assert repo.added_lines(base, head) == {"model.py": [(1, "x = 1"), (2, "model.fit(X)")]}
    repo.run("reset", "-q", "--soft", base)
    assert repo.staged_added_lines() == {"model.py": [(1, "x = 1"), (2, "model.fit(X)")]}


@pytest.mark.parametrize("name", ['日"x.py', "é\tx.py", "a\\b.py"])
def test_added_lines_name_unusual_paths_exactly_whatever_the_workspace_quote_path_setting(repo: GitRepo, name: str) -> None:
    base = repo.head() or ""
    (repo.path / name).write_text("model.fit(X)\n")
    head = repo.commit_all("odd name")
    _append_config(repo, "[core]\n\tquotePath = false\n")
    assert repo.added_lines(base, head) == {name: [(1, "model.fit(X)")]}
