"""Creating and updating governed workspaces from the copier template.

Copier can only update from a versioned (git) template, while mlgate ships its template as a plain
folder (configs/template/). So every init and update exports the folder into a throwaway git
repository and tags the commit `<generation>.0.0+tree.<first 12 hex of its git tree hash>`: the
generation orders the versions a workspace has seen, the tree hash names the exact contents. The
exported commit is also stored in the workspace's own repository under
`refs/mlgate/template/<tag>`, so a later update rebuilds the old version bit for bit from the
workspace itself, whatever mlgate checkout, clone or CI runner it runs from and whatever happened
to the template since.

An update never writes to main or to the working tree: it runs in a temporary clone and leaves its
result as one commit on the branch `mlgate/template-<version>`, to be reviewed and merged like any
other change (the standards it may touch are only read from main).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from server.acknowledgements import acknowledge_initial
from server.git import GitRepo
from server.safe_yaml import load_document
from server.settings import CONFIGS_DIR, load_settings, policy_limits
from tools.errors import GitRefused, IntegrityError, InvalidInput, NotFound

TEMPLATE_DIR = CONFIGS_DIR / "template"
ANSWERS_FILE = ".copier-answers.yml"
# What `_src_path` says in a committed answers file: the template ships with mlgate, not at a path.
TEMPLATE_SOURCE = "mlgate:configs/template"
TEMPLATE_REFS = "refs/mlgate/template"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # fullmatch: "$" would let a trailing newline through
VERSION_TAG = re.compile(r"(?P<generation>[1-9][0-9]{0,5})\.0\.0\+tree\.(?P<tree>[0-9a-f]{12})")
SKIPPED = frozenset({"__pycache__", ".git"})


@dataclass(frozen=True)
class UpdateResult:
    old_version: str
    new_version: str
    branch: str | None  # None when the workspace already has this template version
    changed: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()


# --- exporting the template folder as a versioned git repository ----------------------------


def template_files(template_dir: Path) -> list[Path]:
    """The template's files, relative to it. Raises InvalidInput on a symlink or special file."""
    files = []
    for path in sorted(Path(template_dir).rglob("*")):
        relative = path.relative_to(template_dir)
        if SKIPPED.intersection(relative.parts) or path.suffix == ".pyc" or path.is_dir():
            continue
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"template entry {relative} is not a regular file", "keep only plain files in the template")
        files.append(relative)
    return files


def _replace_tree(template_dir: Path, repo: GitRepo) -> None:
    """Make the repository's working tree hold exactly the template's files."""
    for tracked in repo.text("ls-files", "-z").split("\0"):
        if tracked:
            (repo.path / tracked).unlink()
    for relative in template_files(template_dir):
        (repo.path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template_dir / relative, repo.path / relative)
    repo.run("add", "-A")


def _fetch_stored_version(repo: GitRepo, workspace: GitRepo, tag: str) -> None:
    """Recreate tag `tag` in `repo` from the workspace's stored copy and check its contents."""
    source = f"{TEMPLATE_REFS}/{tag}"  # `tag` matched VERSION_TAG: safe as a ref, '+' included
    if workspace.run("rev-parse", "--verify", "-q", f"{source}^{{commit}}", check=False).returncode:
        raise NotFound(
            f"template version {tag} is not stored in the workspace repository ({source})",
            f"fetch it from the repository the workspace was cloned from: git fetch ORIGIN '{TEMPLATE_REFS}/*:{TEMPLATE_REFS}/*'",
            rule_id="workspace.template_version",
        )
    repo.run("fetch", "-q", "--no-tags", str(workspace.path), f"{source}:refs/tags/{tag}")
    repo.run("reset", "-q", "--hard", f"refs/tags/{tag}")
    if not repo.text("rev-parse", "HEAD^{tree}").startswith(VERSION_TAG.fullmatch(tag)["tree"]):
        raise IntegrityError(f"stored template version {tag} does not match its tree hash", "restore refs/mlgate/template from a backup of the workspace", rule_id="workspace.template_version")


def export_template(template_dir: Path, into: Path, *, previous: tuple[GitRepo, str] | None = None) -> str:
    """Export `template_dir` as a tagged commit in a new git repository at `into`; return the tag.

    With `previous` (workspace repo, tag) the new commit follows that stored version, so copier
    sees both; when the contents are unchanged the previous tag is returned and nothing is added.
    """
    Path(into).mkdir(parents=True, exist_ok=True)
    repo = GitRepo.init(into)
    if previous is not None:
        _fetch_stored_version(repo, *previous)
    _replace_tree(Path(template_dir), repo)
    if previous is not None and not repo.run("diff", "--cached", "--quiet", check=False).returncode:
        return previous[1]
    repo.run("commit", "-q", "--no-verify", "-m", "mlgate workspace template")
    generation = repo.text("rev-list", "--count", "HEAD")
    tag = f"{generation}.0.0+tree.{repo.text('rev-parse', 'HEAD^{tree}')[:12]}"
    repo.run("tag", tag)
    return tag


def _store_version(workspace: GitRepo, template_repo: Path, tag: str) -> None:
    workspace.run("fetch", "-q", "--no-tags", str(template_repo), f"refs/tags/{tag}:{TEMPLATE_REFS}/{tag}")


# --- the answers file -------------------------------------------------------------------------


def _point_answers_at(workspace: Path, source: str) -> None:
    """Set `_src_path` in the answers file (copier reads the template location from it)."""
    path = workspace / ANSWERS_FILE
    text, count = re.subn(r"(?m)^_src_path:.*$", f"_src_path: {json.dumps(source)}", path.read_text())
    if count != 1:
        raise IntegrityError(f"{ANSWERS_FILE} has no single _src_path entry", "restore it from main", rule_id="workspace.answers")
    path.write_text(text)


def read_template_version(repo: GitRepo, ref: str = "main") -> str:
    """The template version recorded in the answers file on `ref`. Raises NotFound/InvalidInput."""
    raw = repo.show(ref, ANSWERS_FILE)
    if raw is None:
        raise NotFound(f"{ANSWERS_FILE} is not committed on {ref}", "this directory was not made by mlgate init", rule_id="workspace.answers")
    answers = load_document(raw, policy_limits()["documents"], name=ANSWERS_FILE)
    version = answers.get("_commit")
    if not isinstance(version, str) or not VERSION_TAG.fullmatch(version):
        raise InvalidInput(f"{ANSWERS_FILE} on {ref} records no mlgate template version", "restore the file from the commit mlgate init made", rule_id="workspace.answers")
    return version


# --- init -----------------------------------------------------------------------------------


def check_name(kind: str, value: str) -> str:
    """Raises InvalidInput unless `value` is lowercase letters, digits, underscores and dashes."""
    if not NAME.fullmatch(value):
        raise InvalidInput(f"{kind} name {value!r} is not allowed", "use lowercase letters, digits, underscores and dashes (at most 63), starting with a letter or digit, e.g. bank_x", rule_id="workspace.name")
    return value


def _require_empty(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"{target} exists and is not an empty directory", "choose a new directory for the workspace; nothing was written", rule_id="workspace.not_empty")


def _clear(target: Path, created: bool) -> None:
    """Undo a failed init: remove what it wrote (the directory too if init created it)."""
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _acknowledge(target: Path, repo: GitRepo) -> None:
    """The operator who made the workspace acknowledges its standards and server config: the
    first record of its audit chain, which every later call is compared against."""
    acknowledge_initial(load_settings(target), repo)


def init_workspace(target: Path, client: str = "demo-bank", project: str = "credit-default", *, template_dir: Path = TEMPLATE_DIR) -> Path:
    """Render the template into a new or empty `target`, `git init -b main` it, commit, and
    chain the operator's first acknowledgement of its standards (server/acknowledgements.py).

    Raises InvalidInput for a non-empty target or a bad name (nothing written), GitRefused when
    git fails (what was written is removed again).
    """
    import copier

    target = Path(target).resolve()
    check_name("client", client)
    check_name("project", project)
    _require_empty(target)
    created = not target.exists()
    try:
        with tempfile.TemporaryDirectory(prefix="mlgate-template-") as tmp:
            tag = export_template(template_dir, Path(tmp))
            copier.run_copy(tmp, str(target), data={"client_name": client, "project_name": project}, vcs_ref=tag, defaults=True, quiet=True, unsafe=False)
            _point_answers_at(target, TEMPLATE_SOURCE)
            repo = GitRepo.init(target)
            from server.hooks import install_hooks  # noqa: PLC0415

            install_hooks(repo)  # core.hooksPath=.githooks, hooks executable (committed as such)
            repo.commit_all(f"mlgate: initialise governed workspace (template {tag})")
            _store_version(repo, Path(tmp), tag)
            _acknowledge(target, repo)
    except BaseException:
        _clear(target, created)
        raise
    return target


# --- update ---------------------------------------------------------------------------------


def _require_clean(repo: GitRepo) -> None:
    if not (repo.path / ".git").exists():
        raise NotFound(f"{repo.path} is not a git repository", "run mlgate update on a directory made by mlgate init", rule_id="workspace.not_git")
    status = repo.text("status", "--porcelain")
    if status:
        files = ", ".join(line[3:] for line in status.splitlines()[:5])
        raise GitRefused(f"the workspace has uncommitted changes ({files})", "commit or remove them, then run mlgate update again; nothing was changed", rule_id="workspace.dirty")


def _conflicted(clone: GitRepo, base: str) -> tuple[str, ...]:
    """Files of the update that carry copier's inline conflict markers or .rej leftovers."""
    changed = [p for p in clone.text("diff", "--cached", "--name-only", base).splitlines() if p]
    marked = [p for p in changed if (clone.path / p).is_file() and re.search(rb"(?m)^<{7} ", (clone.path / p).read_bytes())]
    return tuple(marked + [p for p in changed if p.endswith(".rej")])


def _run_copier_update(clone: Path, template_repo: Path, tag: str) -> None:
    import copier

    _point_answers_at(clone, str(template_repo))
    GitRepo(clone).commit_all("point the answers file at the exported template")
    copier.run_update(str(clone), vcs_ref=tag, defaults=True, overwrite=True, skip_answered=True, conflict="inline", quiet=True, unsafe=False)
    _point_answers_at(clone, TEMPLATE_SOURCE)


def _commit_update(clone: GitRepo, base_head: str, branch: str, message: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """One commit on `branch` in the clone whose only parent is base_head (the temporary commit
    pointing copier at the export is left out). Returns (changed files, conflicted files)."""
    clone.run("add", "-A")
    conflicts = _conflicted(clone, base_head)
    changed = tuple(p for p in clone.text("diff", "--cached", "--name-only", base_head).splitlines() if p)
    if conflicts:
        message += "\n\nConflicts to resolve before merging: " + ", ".join(conflicts)
    commit = clone.text("commit-tree", clone.text("write-tree"), "-p", base_head, "-m", message)
    clone.run("branch", "-f", branch, commit)
    return changed, conflicts


def update_workspace(workspace: Path, *, template_dir: Path = TEMPLATE_DIR, base: str = "main") -> UpdateResult:
    """Apply the current template to the workspace as one commit on `mlgate/template-<version>`.

    Main and the working tree are left as they are. Raises GitRefused for a dirty workspace or an
    existing update branch, NotFound/InvalidInput when the workspace records no template version.
    """
    repo = GitRepo(Path(workspace).resolve())
    _require_clean(repo)
    old = read_template_version(repo, base)
    with tempfile.TemporaryDirectory(prefix="mlgate-update-") as tmp:
        template_repo, clone_dir = Path(tmp) / "template", Path(tmp) / "clone"
        new = export_template(template_dir, template_repo, previous=(repo, old))
        if new == old:
            return UpdateResult(old, new, None)
        branch = f"mlgate/template-{new.replace('+', '-')}"
        if repo.resolve(branch) is not None:
            raise GitRefused(f"branch {branch} already exists", f"merge or delete {branch}, then run mlgate update again", rule_id="workspace.update_branch")
        base_head = repo.resolve(base) or ""
        repo.run("clone", "-q", "--no-hardlinks", "--branch", base, "--", str(repo.path), str(clone_dir))
        _run_copier_update(clone_dir, template_repo, new)
        changed, conflicts = _commit_update(GitRepo(clone_dir), base_head, branch, f"mlgate: update workspace template {old} -> {new}")
        repo.run("fetch", "-q", "--no-tags", str(clone_dir), f"refs/heads/{branch}:refs/heads/{branch}")
        _store_version(repo, template_repo, new)
    return UpdateResult(old, new, branch, changed, conflicts)


def check_is_workspace(path: Path | str) -> Path:
    """`path` resolved, when it is a governed workspace (mlgate init's answers file and standards).
    Raises InvalidInput otherwise, so state is never created beside an arbitrary directory."""
    workspace = Path(path).resolve()
    if not (workspace / ANSWERS_FILE).is_file() or not (workspace / "configs" / "project_standards.yaml").is_file():
        raise InvalidInput(f"{workspace} is not an mlgate workspace", "pass --workspace DIR of a workspace made by `mlgate init DIR`", rule_id="workspace.not_found")
    return workspace

