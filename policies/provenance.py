"""Rules over a pull request of experiment work (DESIGN §3 open_pr, §4 PR provenance and roles).

Facts are a mapping gathered by tools/open_pr.py:

    principal        Principal
    run              the MLflow run {status, params, metrics, tags} or None
    commit           the run's git_commit param (C), or None
    branch           the requested feature branch name
    branch_problem   why the branch name is refused, or None (see branch_problem below)
    branch_head      the branch's commit in the workspace, None when it does not exist yet
    protected_ref    the protected branch (main)
    commit_known     C exists in the workspace repository
    commit_on_base   C is already contained in the protected ref (nothing to review)
    changed_paths    paths changed between the merge base with the protected ref and C
    added_lines      {path: [(line number, text), ...]} lines C adds over that merge base
    experiment       configs/experiment.yaml at C (parsed) or None
    in_force         {protected path: canonical value} approved values the server last wrote
    secret_findings  ["title", "body", ...] parts of the PR text that look like credentials
    run_files        {recorded, mismatched}: the files the run used (its recorded SHA-256s) re-checked
                     against the blobs at C (tools/run_pins.run_files_check)

The helpers here are also used by the workspace hooks (server/hooks.py) on staged changes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from policies.config_change import canonical, canonical_at
from policies.decision import Decision, rule
from policies.principal import Principal

SOURCE = "DESIGN.md §3 open_pr, §4 PR provenance"
COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
AGENT_BRANCH = re.compile(r"^agent/[a-z0-9._-]{1,60}\Z")
STANDARDS_PATH = "configs/project_standards.yaml"
BRANCH_RULE = "agent/ followed by 1-60 lowercase letters, digits, '.', '_' or '-'"


# --- pure helpers -----------------------------------------------------------------------------


def branch_problem(name: Any) -> str | None:
    """Why `name` is refused as a feature branch, or None. Beyond the allowlist pattern the name
    must be a valid git ref: no `..`, no component starting with '.' or '-', no `.lock` ending."""
    if not isinstance(name, str) or not AGENT_BRANCH.match(name):
        return f"branch names must be {BRANCH_RULE}"
    leaf = name.split("/", 1)[1]
    if ".." in leaf or leaf.startswith((".", "-")) or leaf.endswith((".", ".lock")):
        return "a branch name may not contain '..', start with '.' or '-', or end with '.' or '.lock'"
    return None


def _excluded(path: str, exclude: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in exclude)


def guard_hits(added_lines: Mapping[str, Iterable[tuple[int, str]]], guard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{path, line, pattern}] for added lines ((line number, text) per path) matching a
    training-guard pattern (a regex from configs/policy.yaml `training_guard.patterns`) in paths
    not excluded by `training_guard.exclude` (shell globs over the path; `*` also matches '/')."""
    patterns = [(p, re.compile(p)) for p in guard["patterns"]]
    hits = []
    for path in sorted(added_lines):
        if _excluded(path, guard.get("exclude") or ()):
            continue
        for number, text in added_lines[path]:
            hits.extend({"path": path, "line": number, "pattern": source} for source, regex in patterns if regex.search(text))
    return hits


def protected_deviations(document: Any, protected: Mapping[str, Any], in_force: Mapping[str, str]) -> list[dict[str, Any]]:
    """Protected paths of an experiment config holding neither the standards' value nor the
    approved value the server last wrote: [{path, value, required}]."""
    found = []
    for path, required in sorted(protected.items()):
        value = canonical_at(document, path)
        if value not in (canonical(required), in_force.get(path)):
            found.append({"path": path, "value": value, "required": canonical(required)})
    return found


def run_files_problem(run_files: Any) -> str | None:
    """Why the files a run used do not show it clean at its commit, or None. `run_files`:
    {recorded: bool, mismatched: [paths]} as re-checked from the run's recorded hashes."""
    if not isinstance(run_files, Mapping) or run_files.get("recorded") is not True:
        return "the run recorded no hashes of the files it used (run_files_sha256), so it cannot be shown to match its commit"
    mismatched = run_files.get("mismatched")
    if not isinstance(mismatched, list) or mismatched:
        listed = ", ".join(map(str, mismatched)) if isinstance(mismatched, list) else "unknown files"
        return f"the bytes the run used differ from its commit in {listed} (an uncommitted or hidden change)"
    return None


def _run_params(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    run = facts["run"]
    return (run.get("params") or {}) if isinstance(run, Mapping) else {}


# --- rules ------------------------------------------------------------------------------------


@rule("pr.run_succeeded", source=SOURCE, description="The cited MLflow run exists and finished successfully (status FINISHED).")
def run_succeeded(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    run = facts["run"]
    status = run.get("status") if isinstance(run, Mapping) else None
    if status == "FINISHED":
        return Decision.allow("pr.run_succeeded", "the run finished")
    return Decision.deny("pr.run_succeeded", f"the run's status is {status or 'unknown'}, not FINISHED", "open a PR only for a run that finished; run_experiment again if it failed or was killed")


@rule(
    "pr.run_clean",
    source=SOURCE,
    description="The run was made from a clean commit: git_dirty is false, git_commit is a full commit id, and every file the run used (its recorded SHA-256) is the blob at that commit.",
)
def run_clean(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    params = _run_params(facts)
    remediation = "commit your changes (un-hide any file: git update-index --no-skip-worktree --no-assume-unchanged FILE), run_experiment again from the clean commit, then open_pr with the new run id"
    if params.get("git_dirty") != "false" or not COMMIT.match(str(params.get("git_commit", ""))):
        reason = f"the run was made from a working tree with uncommitted changes (git_dirty={params.get('git_dirty')!r}) or records no commit"
        return Decision.deny("pr.run_clean", reason, remediation)
    problem = run_files_problem(facts.get("run_files"))
    if problem is not None:
        return Decision.deny("pr.run_clean", problem, remediation)
    return Decision.allow("pr.run_clean", f"run made from clean commit {params['git_commit']}")


@rule("pr.branch_allowed", source="issue 5 git adapter", description=f"The feature branch is {BRANCH_RULE}; never the protected branch, never an option or a ref expression.")
def branch_allowed(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    problem = facts["branch_problem"]
    if problem is None and branch_problem(facts["branch"]) is None:
        return Decision.allow("pr.branch_allowed", f"branch {facts['branch']}")
    return Decision.deny("pr.branch_allowed", problem or "the branch name is refused", f"pass a branch such as agent/my-change ({BRANCH_RULE}), or leave it out")


@rule(
    "pr.commit_is_branch_head",
    source=SOURCE,
    description="The run's commit exists in the workspace and is the head of the feature branch (a missing branch is created at it).",
)
def commit_is_branch_head(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    commit, head = facts["commit"], facts["branch_head"]
    if not facts["commit_known"]:
        return Decision.deny("pr.commit_is_branch_head", f"the run's commit {commit} is not in the workspace repository", "run_experiment from a commit of this workspace")
    if head in (None, commit):
        return Decision.allow("pr.commit_is_branch_head", f"{facts['branch']} {'is' if head else 'will be created'} at {commit}")
    return Decision.deny(
        "pr.commit_is_branch_head",
        f"branch {facts['branch']} points at {head}, but the run was made from {commit}: the PR would not carry the code the run measured",
        "run_experiment on the branch head and open_pr with that run, or choose another branch name",
    )


@rule("pr.has_changes", source=SOURCE, description="The run's commit is not already contained in the protected branch: a PR needs changes to review.")
def has_changes(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if facts["commit_known"] and not facts["commit_on_base"]:
        return Decision.allow("pr.has_changes", f"{len(facts['changed_paths'])} changed paths")
    return Decision.deny("pr.has_changes", f"commit {facts['commit']} is already on {facts['protected_ref']} (or unknown): there is nothing to review", "commit your change, run_experiment from that commit, then open_pr")


@rule(
    "pr.training_guard",
    source="DESIGN.md §2 hooks, §4 training guard",
    description="The PR adds no training or tracking calls (.fit(, .train(, .partial_fit(, mlflow.start_run, mlflow.log_) outside the exclusions in configs/policy.yaml.",
)
def training_guard(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    hits = guard_hits(facts["added_lines"], config["policy"]["training_guard"])
    if not hits:
        return Decision.allow("pr.training_guard", "no training calls added")
    listed = ", ".join(f"{h['path']}:{h['line']} matches {h['pattern']}" for h in hits[:10])
    return Decision.deny(
        "pr.training_guard",
        f"the change adds training or tracking calls outside mlgate: {listed}",
        "models are trained only by run_experiment in the sandbox; remove these calls (src/features.py must not fit anything) and commit again",
    )


@rule(
    "pr.protected_fields_unchanged",
    source="project_standards.yaml protected_fields; DESIGN.md §3",
    description="configs/experiment.yaml at the PR commit holds the standards' value (or an approved override) in every protected field.",
)
def protected_fields_unchanged(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if not isinstance(facts["experiment"], Mapping):
        return Decision.deny("pr.protected_fields_unchanged", "configs/experiment.yaml at the run's commit is missing or unreadable", "restore configs/experiment.yaml, commit, and run again")
    protected = config["standards"].get("protected_fields") or {}
    found = protected_deviations(facts["experiment"], protected, facts["in_force"])
    if not found:
        return Decision.allow("pr.protected_fields_unchanged", "protected fields hold the standards' or approved values")
    listed = ", ".join(f"{d['path']}={d['value']} (standard {d['required']})" for d in found)
    return Decision.deny(
        "pr.protected_fields_unchanged",
        f"protected fields differ from the standards without an approval: {listed}",
        "change protected fields only with propose_config_change (a human approves), or restore the standards' values; then commit and run again",
    )


@rule("pr.standards_unchanged", source="DESIGN.md §9 trust boundaries", description="An agent's PR does not change configs/project_standards.yaml: standards change through a human's reviewed merge.")
def standards_unchanged(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    principal = facts["principal"]
    if STANDARDS_PATH not in facts["changed_paths"] or (isinstance(principal, Principal) and principal.is_human):
        return Decision.allow("pr.standards_unchanged", "standards untouched (or changed by a human)")
    return Decision.deny(
        "pr.standards_unchanged",
        f"the change edits {STANDARDS_PATH}, which agents may not change",
        f"revert {STANDARDS_PATH} to the version on main (git checkout main -- {STANDARDS_PATH}), commit, run again; ask a human to propose standards changes",
    )


@rule("pr.no_secrets", source="DESIGN.md §4 secrets never leave", description="The PR title and description carry nothing that looks like a credential.")
def no_secrets(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    found = list(facts["secret_findings"])
    if not found:
        return Decision.allow("pr.no_secrets", "no credentials in the PR text")
    return Decision.deny("pr.no_secrets", f"the PR {', '.join(found)} looks like it carries a credential", "remove tokens, passwords and keys from the title and body")


@rule(
    "role.agents_cannot_touch_main",
    source="DESIGN.md §4 roles; issue 5",
    description="No tool call writes or pushes the protected branch; agents work only on agent/* branches.",
)
def agents_cannot_touch_main(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    branch, protected = facts["branch"], facts["protected_ref"]
    if isinstance(branch, str) and branch != protected and branch.startswith("agent/"):
        return Decision.allow("role.agents_cannot_touch_main", f"{branch} is not {protected}")
    remediation = "open_pr on an agent/* branch; a human merges the PR into main after review"
    if branch == protected:
        return Decision.deny("role.agents_cannot_touch_main", f"{protected} is protected: no tool writes or pushes it, and agents work only on agent/* branches", remediation)
    # any other refused name is refused as a name (an option such as --upload-pack is not main)
    problem = branch_problem(branch) or "agents work only on agent/* branches"
    return Decision.deny("role.agents_cannot_touch_main", f"the branch name is refused: {problem}", remediation)
