"""Workspaces from the copier template: init and update with real copier and real git in tmp dirs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from jinja2 import TemplateSyntaxError

from server.cli import main
from server.git import GitRepo
from server.registry import check_model_name
from server.standards import StandardsSource
from server.tracking import MlflowTracking, experiment_name
from server.workspace import TEMPLATE_DIR, TEMPLATE_SOURCE, VERSION_TAG, init_workspace, read_template_version, template_files, update_workspace
from tools.errors import GitRefused, IntegrityError, InvalidInput, NotFound
from tools.promote import model_name

EXPECTED_FILES = {
    ".copier-answers.yml",
    ".githooks/pre-commit",
    ".githooks/pre-merge-commit",
    ".pre-commit-config.yaml",
    ".gitignore",
    "AGENTS.md",
    "configs/experiment.yaml",
    "configs/project_standards.yaml",
    "configs/reasoning.yaml",
    "logs/protected_overrides.log",
    "src/features.py",
}


def git(repo: Path, *args: str) -> str:
    return GitRepo(repo).text(*args)


def commit_edit(repo: Path, relpath: str, text: str) -> None:
    path = repo / relpath
    path.write_text(path.read_text() + text)
    GitRepo(repo).commit_paths([relpath], f"edit {relpath}")


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A private copy of the shipped template that a test may change."""
    return Path(shutil.copytree(TEMPLATE_DIR, tmp_path / "template"))


@pytest.fixture
def made(tmp_path: Path, template: Path) -> Path:
    return init_workspace(tmp_path / "ws", "acme-bank", "pd-model", template_dir=template)


# --- init -----------------------------------------------------------------------------------


def test_init_renders_the_template_and_commits_it_on_main(made: Path) -> None:
    assert set(git(made, "ls-files").splitlines()) == EXPECTED_FILES
    assert git(made, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(made, "rev-list", "--count", "HEAD") == "1"
    assert git(made, "log", "-1", "--format=%an <%ae> / %cn <%ce>") == "mlgate <mlgate@localhost> / mlgate <mlgate@localhost>"
    assert git(made, "status", "--porcelain") == ""
    standards = (made / "configs/project_standards.yaml").read_text()
    assert 'client_name: "acme-bank"' in standards and 'project_name: "pd-model"' in standards
    assert (made / "AGENTS.md").read_text().startswith("# pd-model (acme-bank) — briefing for agents")


def test_init_records_a_template_version_the_workspace_itself_stores(made: Path) -> None:
    version = read_template_version(GitRepo(made))
    assert VERSION_TAG.fullmatch(version) and version.startswith("1.0.0+tree.")
    assert f'_src_path: "{TEMPLATE_SOURCE}"' in (made / ".copier-answers.yml").read_text()
    stored_tree = git(made, "rev-parse", f"refs/mlgate/template/{version}^{{tree}}")
    assert stored_tree.startswith(version.rsplit(".", 1)[1])


@pytest.mark.parametrize(("client", "project"), [("on", "010"), ("null", "1-2"), ("yes", "123")])
def test_names_that_look_like_other_yaml_values_stay_strings_in_the_standards(tmp_path: Path, template: Path, client: str, project: str) -> None:
    made = init_workspace(tmp_path / "ws", client, project, template_dir=template)
    standards = StandardsSource(GitRepo(made), "main").policy_config()["standards"]
    assert (standards["client_name"], standards["project_name"]) == (client, project)


def test_init_gitignores_state_and_datasets_but_not_configs(made: Path) -> None:
    ignored = ".mlgate/audit.jsonl", "data/shadow/" + "a" * 64 + "/data.csv"
    proc = GitRepo(made).run("check-ignore", "--", *ignored, "configs/experiment.yaml", check=False)
    assert proc.stdout.decode().split() == list(ignored)


def test_same_template_contents_give_the_same_version(tmp_path: Path, template: Path) -> None:
    first = init_workspace(tmp_path / "one", template_dir=template)
    second = init_workspace(tmp_path / "two", template_dir=template)
    assert read_template_version(GitRepo(first)) == read_template_version(GitRepo(second))


def test_init_refuses_a_non_empty_directory_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput) as refused:
        init_workspace(target)
    assert refused.value.rule_id == "workspace.not_empty" and "not an empty directory" in refused.value.reason
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_init_into_an_existing_empty_directory_works(tmp_path: Path, template: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert (init_workspace(tmp_path / "empty", template_dir=template) / "AGENTS.md").is_file()


@pytest.mark.parametrize("client", ["Demo-Bank", "_bank", "-x", "../up", "", "a" * 64, "bank\n", "bank x", "bank.x"])
def test_init_refuses_a_bad_client_name_before_writing(tmp_path: Path, client: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        init_workspace(tmp_path / "ws", client=client)
    assert refused.value.rule_id == "workspace.name" and "lowercase letters, digits, underscores and dashes" in refused.value.remediation
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("existed", [False, True])
def test_init_removes_what_it_wrote_when_rendering_fails(tmp_path: Path, template: Path, existed: bool) -> None:
    target = tmp_path / "ws"
    if existed:
        target.mkdir()
    (template / "broken.md.jinja").write_text("{{ unclosed ")
    with pytest.raises(TemplateSyntaxError):
        init_workspace(target, template_dir=template)
    assert (list(target.iterdir()) == []) if existed else not target.exists()


def test_template_with_a_symlink_is_refused(template: Path) -> None:
    (template / "link").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInput, match="not a regular file"):
        template_files(template)


def test_shipped_template_exports_without_build_leftovers() -> None:
    files = {str(p) for p in template_files(TEMPLATE_DIR)}
    assert "AGENTS.md.jinja" in files and "copier.yml" in files
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


# --- update ---------------------------------------------------------------------------------


def test_update_without_template_changes_creates_nothing(made: Path, template: Path) -> None:
    before = git(made, "for-each-ref")
    result = update_workspace(made, template_dir=template)
    assert result.branch is None and result.old_version == result.new_version
    assert git(made, "for-each-ref") == before


def test_update_brings_a_template_change_onto_a_review_branch_and_keeps_user_edits(made: Path, template: Path) -> None:
    commit_edit(made, "configs/reasoning.yaml", "# a note the team added\n")
    main_before, cwd = git(made, "rev-parse", "main"), os.getcwd()
    (template / "src/features.py").write_text((template / "src/features.py").read_text() + "# template v2\n")

    result = update_workspace(made, template_dir=template)

    assert result.branch and result.new_version.startswith("2.0.0+tree.") and result.conflicts == ()
    assert set(result.changed) == {".copier-answers.yml", "src/features.py"}
    assert git(made, "rev-parse", "main") == main_before and git(made, "status", "--porcelain") == ""
    assert "# template v2" not in (made / "src/features.py").read_text()
    assert git(made, "rev-parse", f"{result.branch}^") == main_before
    assert git(made, "show", f"{result.branch}:src/features.py").endswith("# template v2")
    assert git(made, "show", f"{result.branch}:configs/reasoning.yaml").endswith("# a note the team added")
    answers = git(made, "show", f"{result.branch}:.copier-answers.yml")
    assert f"_commit: {result.new_version}" in answers and f'_src_path: "{TEMPLATE_SOURCE}"' in answers
    assert os.getcwd() == cwd


def test_merged_update_is_the_base_of_the_next_one(made: Path, template: Path) -> None:
    (template / "configs/reasoning.yaml").write_text((template / "configs/reasoning.yaml").read_text() + "# v2\n")
    second = update_workspace(made, template_dir=template)
    GitRepo(made).run("merge", "-q", "--ff-only", second.branch)
    (template / "logs/protected_overrides.log").write_text((template / "logs/protected_overrides.log").read_text() + "# v3\n")

    third = update_workspace(made, template_dir=template)

    assert third.old_version == second.new_version and third.new_version.startswith("3.0.0+tree.")
    assert set(third.changed) == {".copier-answers.yml", "logs/protected_overrides.log"}
    assert git(made, "show", f"{third.branch}:configs/reasoning.yaml").endswith("# v2")


def test_update_marks_conflicts_where_template_and_workspace_changed_the_same_lines(made: Path, template: Path) -> None:
    features = made / "src/features.py"
    features.write_text(features.read_text().replace("return frame.copy()", "return frame.fillna(0)"))
    GitRepo(made).commit_paths(["src/features.py"], "team features")
    shipped = template / "src/features.py"
    shipped.write_text(shipped.read_text().replace("return frame.copy()", "return frame.copy(deep=True)"))

    result = update_workspace(made, template_dir=template)

    assert result.conflicts == ("src/features.py",)
    assert "<<<<<<< " in git(made, "show", f"{result.branch}:src/features.py")
    assert "Conflicts to resolve" in git(made, "log", "-1", "--format=%B", result.branch)


@pytest.mark.parametrize("dirt", ["tracked", "untracked"])
def test_update_refuses_a_dirty_workspace_and_changes_nothing(made: Path, template: Path, dirt: str) -> None:
    if dirt == "tracked":
        (made / "configs/experiment.yaml").write_text("experiment: {}\n")
    else:
        (made / "scratch.py").write_text("x = 1\n")
    (template / "AGENTS.md.jinja").write_text("changed\n")
    refs = git(made, "for-each-ref")
    with pytest.raises(GitRefused) as refused:
        update_workspace(made, template_dir=template)
    assert refused.value.rule_id == "workspace.dirty" and "uncommitted changes" in refused.value.reason
    assert "commit or remove them" in refused.value.remediation
    assert git(made, "for-each-ref") == refs


def test_update_refuses_when_the_stored_template_version_is_missing(made: Path, template: Path) -> None:
    version = read_template_version(GitRepo(made))
    GitRepo(made).run("update-ref", "-d", f"refs/mlgate/template/{version}")
    (template / "AGENTS.md.jinja").write_text("changed\n")
    with pytest.raises(NotFound) as refused:
        update_workspace(made, template_dir=template)
    assert "git fetch" in refused.value.remediation and "refs/mlgate/template" in refused.value.remediation


def test_update_refuses_a_stored_template_version_that_was_swapped(made: Path, template: Path) -> None:
    version = read_template_version(GitRepo(made))
    GitRepo(made).run("update-ref", f"refs/mlgate/template/{version}", "main")
    (template / "AGENTS.md.jinja").write_text("changed\n")
    with pytest.raises(IntegrityError, match="does not match its tree hash"):
        update_workspace(made, template_dir=template)


def test_update_refuses_an_existing_update_branch(made: Path, template: Path) -> None:
    (template / "AGENTS.md.jinja").write_text("changed\n")
    first = update_workspace(made, template_dir=template)
    with pytest.raises(GitRefused, match="already exists"):
        update_workspace(made, template_dir=template)
    assert first.branch in git(made, "branch", "--list")


def test_update_works_in_a_clone_that_fetched_the_template_refs(tmp_path: Path, made: Path, template: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(made), str(clone)], check=True)
    GitRepo(clone).run("fetch", "-q", "origin", "refs/mlgate/*:refs/mlgate/*")
    (template / "AGENTS.md.jinja").write_text((template / "AGENTS.md.jinja").read_text() + "\nOne more rule.\n")
    result = update_workspace(clone, template_dir=template)
    assert git(clone, "show", f"{result.branch}:AGENTS.md").endswith("One more rule.")


def test_update_refuses_a_directory_mlgate_did_not_make(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    GitRepo.init(plain)
    (plain / "README").write_text("x\n")
    GitRepo(plain).commit_all("first")
    with pytest.raises(NotFound, match="not committed on main"):
        update_workspace(plain)


def test_update_refuses_a_directory_that_is_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as refused:
        update_workspace(tmp_path / "missing")
    assert refused.value.rule_id == "workspace.not_git"


# --- the commands ---------------------------------------------------------------------------


def test_init_command_lists_what_it_made_and_the_next_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "ws"), "--client", "acme", "--project", "pd"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {path}\n" in out for path in EXPECTED_FILES)
    assert "mlgate data add" in out and "mlgate serve --workspace" in out and "mlgate standards set --workspace" in out


def test_init_command_on_a_non_empty_directory_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").write_text("x")
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not an empty directory" in err and "what to do: choose a new directory" in err


def test_update_command_reports_up_to_date(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["update", str(workspace)]) == 0
    assert "Already up to date" in capsys.readouterr().out


def test_update_command_names_the_review_branch_and_how_to_merge_it(tmp_path: Path, template: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (template / "AGENTS.md.jinja").write_text((template / "AGENTS.md.jinja").read_text() + "A line the shipped template drops.\n")
    older = init_workspace(tmp_path / "ws", template_dir=template)
    assert main(["update", str(older)]) == 0
    out = capsys.readouterr().out
    branch = git(older, "branch", "--list", "mlgate/template-*").strip(" *")
    assert f"one commit on branch {branch}" in out and f"merge {branch}" in out and "  AGENTS.md\n" in out
    assert "main and the working tree are unchanged" in out
    assert "A line the shipped template drops." not in git(older, "show", f"{branch}:AGENTS.md")


def test_init_accepts_underscored_names_end_to_end(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path / "ws"), "--client", "bank_x", "--project", "fraud_model_v1"]) == 0
    standards = StandardsSource(GitRepo(tmp_path / "ws"), "main").policy_config()["standards"]
    assert (standards["client_name"], standards["project_name"]) == ("bank_x", "fraud_model_v1")
    tracking = MlflowTracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    name = experiment_name(standards["client_name"], standards["project_name"])
    assert name == "bank_x/fraud_model_v1" and tracking.get_or_create_experiment(name) == tracking.get_or_create_experiment(name)
    assert check_model_name(model_name(standards)) == "bank_x-fraud_model_v1"

