"""The workspace's git hooks (configs/template/.githooks/ calls `mlgate hook NAME`).

    pre-commit         the staged configs validate against the schema, protected fields hold the
                       standards' (or approved) values, no training/tracking calls are added; a
                       commit changing the standards is told that the server needs
                       `mlgate standards accept` before it serves again
    pre-merge-commit   a merge into the protected branch of agent work must be a PR mlgate opened:
                       the run id cited for the branch exists, FINISHED from a clean commit, and
                       its commit == the branch head == the commit being merged

The hooks are a courtesy at the developer's terminal (`git commit --no-verify` skips them); the
server enforces the same rules in open_pr and never runs workspace hooks itself. `mlgate init`
installs them: core.hooksPath=.githooks, and merges into the protected branch always create a
merge commit (fast-forwards would skip the pre-merge-commit hook).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policies.provenance import COMMIT, STANDARDS_PATH, branch_problem, guard_hits, protected_deviations
from server.approvals import ApprovalStore
from server.git import GitRepo
from server.pr_providers import PrRecords, tracking_for
from server.safe_yaml import load_document
from server.settings import Settings, load_settings, policy_limits
from tools.errors import GovernanceError, InvalidInput
from tools.experiment_schema import EXPERIMENT_PATH, REASONING_PATH, ReasoningConfig, schema_errors, validate_experiment

HOOKS_DIR = ".githooks"
HOOK_NAMES = ("pre-commit", "pre-merge-commit")
# Git variables a hook must keep: `git commit -a` / `git commit PATH` stage into a temporary index.
HOOK_GIT_ENV = ("GIT_INDEX_FILE",)


def install_hooks(repo: GitRepo, protected_ref: str = "main") -> None:
    """Point the workspace's local git config at .githooks/, make the hooks executable, record
    the interpreter that runs mlgate, and make merges into the protected ref create a commit."""
    for name in HOOK_NAMES:
        path = repo.path / HOOKS_DIR / name
        if path.is_file():
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    repo.run("config", "--local", "core.hooksPath", HOOKS_DIR)
    repo.run("config", "--local", "mlgate.python", sys.executable)
    repo.run("config", "--local", f"branch.{protected_ref}.mergeOptions", "--no-ff")


def hook_repo(workspace: Path, environ: Mapping[str, str]) -> GitRepo:
    """The workspace repository as git presents it to a hook (its index file kept)."""
    return GitRepo(workspace, env={k: environ[k] for k in HOOK_GIT_ENV if environ.get(k)})


# --- pre-commit -------------------------------------------------------------------------------


def _load(raw: bytes, name: str, limits: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        return load_document(raw, limits["documents"], name=name), []
    except InvalidInput as exc:
        return None, [f"{name}: {exc.reason}"]


def schema_problems(repo: GitRepo, limits: Mapping[str, Any]) -> list[str]:
    """Problems of the staged experiment.yaml and reasoning.yaml against their schemas."""
    problems: list[str] = []
    raw = repo.staged(EXPERIMENT_PATH)
    document, found = _load(raw, EXPERIMENT_PATH, limits) if raw is not None else (None, [f"{EXPERIMENT_PATH} is missing"])
    problems += found
    if document is not None:
        problems += [f"{EXPERIMENT_PATH}: {p}" for p in validate_experiment(document)[1]]
    raw = repo.staged(REASONING_PATH)
    reasoning, found = _load(raw, REASONING_PATH, limits) if raw is not None else (None, [])
    problems += found
    if reasoning is not None:
        try:
            ReasoningConfig.model_validate(reasoning)
        except ValidationError as exc:
            problems += [f"{REASONING_PATH}: {p}" for p in schema_errors(exc, ReasoningConfig)]
    return problems


def _standards(repo: GitRepo, settings: Settings, limits: Mapping[str, Any]) -> dict[str, Any]:
    """The standards the commit is checked against: the staged ones when this commit changes them
    (that change itself needs a reviewed merge to main), else those committed on the protected ref."""
    raw = repo.staged(STANDARDS_PATH) if STANDARDS_PATH in repo.staged_paths() else None
    raw = raw if raw is not None else repo.show(settings.protected_ref, STANDARDS_PATH) or repo.staged(STANDARDS_PATH)
    if raw is None:
        raise InvalidInput(f"{STANDARDS_PATH} is neither staged nor committed on {settings.protected_ref}", "restore it from main", rule_id="hook.standards")
    return load_document(raw, limits["documents"], name=STANDARDS_PATH)


def protected_problems(repo: GitRepo, settings: Settings, limits: Mapping[str, Any]) -> list[str]:
    raw = repo.staged(EXPERIMENT_PATH)
    document = _load(raw, EXPERIMENT_PATH, limits)[0] if raw is not None else None
    if document is None:
        return []
    protected = _standards(repo, settings, limits).get("protected_fields") or {}
    found = protected_deviations(document, protected, ApprovalStore(settings.state_dir).in_force())
    # An operator changing the standards is told how to keep the pair consistent, not sent to the
    # agent's approval path.
    advice = STANDARDS_ADVICE if standards_staged(repo) else "change it with propose_config_change; a human approves"
    return [f"{EXPERIMENT_PATH}: protected field {d['path']} is {d['value']}, the standards require {d['required']} ({advice})" for d in found]


STANDARDS_ADVICE = "this commit changes the standards: set the same value in configs/experiment.yaml in this commit, or let an operator run `mlgate standards set`, which writes both"
ACCEPT_NOTICE = (
    "this commit changes configs/project_standards.yaml: once it is on the protected branch the server refuses every "
    "call until a human or operator runs `mlgate standards accept` (which shows the diff and records who accepted it)"
)


def standards_staged(repo: GitRepo) -> bool:
    return STANDARDS_PATH in repo.staged_paths()


def guard_problems(repo: GitRepo, limits: Mapping[str, Any]) -> list[str]:
    hits = guard_hits(repo.staged_added_lines(), limits["training_guard"])
    return [f"{h['path']}:{h['line']}: added line matches the training guard {h['pattern']} (models are trained only by run_experiment)" for h in hits]


def pre_commit(repo: GitRepo, settings: Settings) -> list[str]:
    """Every problem of the staged commit; empty when it may be committed. A `git commit` that
    concludes a merge stopped by pre-merge-commit gets the merge checks too."""
    limits = policy_limits()
    problems = [*schema_problems(repo, limits), *protected_problems(repo, settings, limits), *guard_problems(repo, limits)]
    return problems + check_merges(repo, settings, {commit: "" for commit in repo.merge_heads()})


# --- pre-merge-commit and verify-pr -----------------------------------------------------------


def verify_pr(repo: GitRepo, settings: Settings, branch: str, *, tracking: Any = None, merging: str | None = None) -> list[str]:
    """Problems of `branch` as a PR: the cited run exists, FINISHED from a clean commit, and
    its commit == the branch head (== `merging`, the commit being merged, when given)."""
    problem = branch_problem(branch)
    if problem is not None:
        return [f"{branch!r}: {problem}"]
    record = PrRecords(settings.state_dir / "prs").for_branch(branch)
    if record is None:
        return [f"{branch}: no PR record cites a run for this branch (open it with the open_pr tool)"]
    head = repo.branch_head(branch)
    try:
        run = (tracking or tracking_for(settings)).get_run(record["run_id"])
    except GovernanceError:
        return [f"{branch}: the cited run {record['run_id']} does not exist"]
    return _run_problems(branch, run, head, merging)


def _run_problems(branch: str, run: Mapping[str, Any], head: str | None, merging: str | None) -> list[str]:
    params, problems = run.get("params") or {}, []
    if run.get("status") != "FINISHED":
        problems.append(f"{branch}: the cited run {run['run_id']} is {run.get('status')}, not FINISHED")
    if params.get("git_dirty") != "false":
        problems.append(f"{branch}: the cited run {run['run_id']} was made from a dirty working tree")
    commit = params.get("git_commit")
    if head is None or commit != head:
        problems.append(f"{branch}: the cited run {run['run_id']} measured commit {commit}, but the branch head is {head}")
    if merging is not None and merging != head:
        problems.append(f"{branch}: the commit being merged ({merging}) is not the branch head ({head})")
    return problems


def merged_commits(environ: Mapping[str, str]) -> dict[str, str]:
    """{commit: name as given to git merge} from the GITHEAD_<commit> variables git sets."""
    found = {key[len("GITHEAD_") :]: value for key, value in environ.items() if key.startswith("GITHEAD_")}
    return {commit: name for commit, name in found.items() if COMMIT.match(commit)}


def _agent_branches(repo: GitRepo, settings: Settings, commit: str, name: str) -> set[str]:
    """Agent branches involved in merging `commit`: those pointing at it, the name given to git
    merge when it is one, and branches whose PR record cites this commit."""
    names = set(repo.branches_at(commit))
    names |= {n for n in (name, name.split("/", 1)[-1]) if branch_problem(n) is None}
    names |= {r["branch"] for r in PrRecords(settings.state_dir / "prs").list() if r["commit"] == commit and r["state"] == "open"}
    return names


def check_merges(repo: GitRepo, settings: Settings, merges: Mapping[str, str], *, tracking: Any = None) -> list[str]:
    """Problems of merging `merges` ({commit: name given to git merge}) into the current branch.
    Only merges into the protected ref are checked; commits that are no agent work pass. A commit
    passes when one agent branch at it is a verified PR: open_pr's branch and the branch the agent
    worked on point at the same commit, and only the first has a PR record."""
    if not merges or repo.current_branch() != settings.protected_ref:
        return []
    problems: list[str] = []
    for commit, name in sorted(merges.items()):
        found = [verify_pr(repo, settings, b, tracking=tracking, merging=commit) for b in sorted(_agent_branches(repo, settings, commit, name))]
        problems += [] if any(not p for p in found) else [p for branch_problems in found for p in branch_problems]
    return problems


def run_hook(name: str, workspace: Path, settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Problems found by hook `name` (pre-commit or pre-merge-commit)."""
    environ = os.environ if environ is None else environ
    repo = hook_repo(workspace, environ)
    if name == "pre-commit":
        return pre_commit(repo, settings)
    return check_merges(repo, settings, merged_commits(environ))


def hook_main(name: str, workspace: Path | str = ".") -> int:
    """Run hook `name` for `workspace`, print its problems; the exit status git acts on."""
    if name not in HOOK_NAMES:
        print(f"mlgate hook: unknown hook {name!r} (one of {', '.join(HOOK_NAMES)})", file=sys.stderr)
        return 2
    settings = load_settings(workspace)
    try:
        problems = run_hook(name, Path(settings.workspace), settings)
    except GovernanceError as exc:
        problems = [f"{exc.reason} ({exc.remediation})"]
    if not problems and name == "pre-commit" and standards_staged(hook_repo(Path(settings.workspace), os.environ)):
        print(f"mlgate {name}: note: {ACCEPT_NOTICE}", file=sys.stderr)
    if problems:
        print(f"mlgate {name}: refused ({len(problems)} problems); fix them, or ask a human if a rule is in the way", file=sys.stderr)
    for problem in problems:
        print(f"mlgate {name}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":  # the hook scripts' fast path: `python -I -m server.hooks NAME`
    sys.exit(hook_main(sys.argv[1] if len(sys.argv) == 2 else ""))
