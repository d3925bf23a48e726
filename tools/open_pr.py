"""open_pr: put a run's committed work on a feature branch and record a PR that cites the run.

The run must exist, have FINISHED and have been made from a clean commit C. C becomes the head of
the feature branch (created at C when missing; an existing branch must already point at C). The
training guard and the protected-field check run over the diff between the protected branch and C.
The branch is pushed (exactly C, never forced), the remote head is re-read and must be C, and only
then is the PR recorded with the MLflow run id, metrics, baseline and gate receipt in its
description. The protected branch is never written or pushed.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
from pydantic import Field, field_validator

from policies.provenance import COMMIT, branch_problem
from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import GitRefused, InvalidInput
from tools.experiment_schema import EXPERIMENT_PATH
from tools.run_pins import run_files_check
from tools.run_record import vouched_run
from tools.run_views import require_project_run
from tools.sealed import unsealed_metrics
from tools.secrets_scan import secret_kind_of_value

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
GATE_RECEIPT = "gate_receipt.json"
PROVENANCE_PARAMS = ("dataset_content_hash", "dataset_schema_hash", "config_hash", "feature_pipeline_hash", "uv_lock_sha256", "standards_sha256", "seed")
MAX_METRIC_LINES = 60


# --- ports this tool uses (implemented in server/) --------------------------------------------


class Runs(Protocol):
    def get_run(self, run_id: str) -> Mapping[str, Any]:
        """{run_id, experiment_id, status, params, metrics, tags}. Raises NotFound."""


class RunArtifacts(Protocol):
    def read_json(self, run_id: str, name: str) -> Any | None: ...


class PullRequests(Protocol):
    name: str

    def push(self, commit: str, branch: str) -> None: ...
    def remote_head(self, branch: str) -> str | None: ...
    def find(self, branch: str) -> dict[str, Any] | None: ...
    def submit(self, draft: Mapping[str, Any]) -> tuple[dict[str, Any], bool]: ...


class OpenPrInput(StrictInput):
    run_id: str = Field(description="MLflow run id (32 lowercase hex) of a FINISHED run made from a clean commit.", pattern=r"^[0-9a-f]{32}$")
    # No control characters, line or paragraph separators, or direction marks and overrides that
    # would show a reviewer another title than the one recorded.
    title: str = Field(description="PR title, one line.", min_length=3, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]+$")
    body: str | None = Field(None, description="What changed and why (markdown; HTML comments and <details> closed). mlgate appends the run's provenance, metrics, baseline and gate receipt.", max_length=20000)
    branch: str | None = Field(
        None,
        description="Feature branch: agent/ followed by 1-60 of a-z 0-9 . _ - (default agent/run-<first 12 of run_id>). It is created at the run's commit, or must already point at it.",
        max_length=200,
    )
    dry_run: bool = Field(False, description="Decide and show the branch, commit and PR description; push and record nothing.")

    @field_validator("body")
    @classmethod
    def _body_keeps_the_provenance_visible(cls, body: str | None) -> str | None:
        problem = body_problem(body or "")
        if problem:
            raise ValueError(problem)
        return body


# --- the PR description (pure) ----------------------------------------------------------------

PROVENANCE_HEADING = "## mlgate provenance"
# mlgate's heading and trailers in any spelling a reader would take for them, matched on the body
# as rendered (_as_read): "mlgate  provenance", "**mlgate-run-id:**", "mlgate<U+2010>commit:".
IMITATIONS = re.compile(r"mlgate[\W_]*provenance|^[\W_]*mlgate[\W_]*(run[\W_]*id|commit)[\W_]*:", re.MULTILINE)
HTML_TAG = re.compile(r"<[^<>]*>")


def _unclosed(body: str, opening: str, closing: str) -> bool:
    lowered = body.lower()
    return lowered.count(opening) > lowered.count(closing) or lowered.rfind(opening) > lowered.rfind(closing)


def body_problem(body: str) -> str | None:
    """Why a PR body is refused, or None. The provenance block follows the body, so an HTML
    comment or <details> the body leaves open would hide it from a reviewer, and a body may not
    carry a block or trailer that reads as mlgate's own."""
    if _unclosed(body, "<!--", "-->") or _unclosed(body, "<details", "</details>"):
        return "the body leaves an HTML comment or <details> open, which would hide the provenance block after it; close it"
    if IMITATIONS.search(_as_read(body)):
        return "the body imitates mlgate's provenance block or its mlgate-run-id/mlgate-commit lines; mlgate writes them"
    return None


def _as_read(body: str) -> str:
    """The body as a reviewer reads it: HTML tags and entities rendered away, compatibility forms
    folded (NFKC: fullwidth letters), invisible format characters (zero-width, bidi) dropped, every
    dash read as '-', lowercased."""
    text = unicodedata.normalize("NFKC", html.unescape(HTML_TAG.sub("", body)))
    return "".join("-" if unicodedata.category(ch) == "Pd" else ch for ch in text if unicodedata.category(ch) != "Cf").lower()


def default_branch(run_id: str) -> str:
    return f"agent/run-{run_id[:12]}"


def run_link(run: Mapping[str, Any], ui_url: str | None) -> str:
    if ui_url:
        return f"{ui_url.rstrip('/')}/#/experiments/{run.get('experiment_id')}/runs/{run['run_id']}"
    return f"runs:/{run['run_id']}"


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model metrics, baseline metrics) as the PR shows them: the sealed test figures are left out
    (an agent reads the PR; tools/sealed.py), baseline metrics are those named val_baseline_*."""
    shown = unsealed_metrics(metrics)
    baseline = {k: v for k, v in sorted(shown.items()) if k.startswith("val_baseline_")}
    return {k: v for k, v in sorted(shown.items()) if k not in baseline}, baseline


def shown_receipt(receipt: Any) -> Any:
    """The gate receipt without its sealed test section."""
    return {k: v for k, v in receipt.items() if k != "sealed_test"} if isinstance(receipt, Mapping) else receipt


def _table(rows: Mapping[str, Any], header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    items = list(rows.items())
    lines += [f"| {k} | `{v}` |" for k, v in items[:MAX_METRIC_LINES]]
    if len(items) > MAX_METRIC_LINES:
        lines.append(f"| ... | {len(items) - MAX_METRIC_LINES} more in the MLflow run |")
    return lines


def _receipt_block(receipt: Any, limit: int) -> list[str]:
    if receipt is None:
        return ["The run has no gate receipt artifact."]
    text = json.dumps(receipt, sort_keys=True, indent=2, default=str)
    if len(text) > limit:
        text = text[:limit] + "\n... (truncated; the full receipt is the run's gate_receipt.json)"
    return ["```json", text, "```"]


def describe(run: Mapping[str, Any], body: str | None, receipt: Any, link: str, receipt_chars: int) -> str:
    """The PR description: the agent's body, then mlgate's provenance block."""
    params, tags = run.get("params") or {}, run.get("tags") or {}
    metrics, baseline = split_metrics(run.get("metrics") or {})
    lines = [body.strip(), "", "---"] if body and body.strip() else []
    lines += [PROVENANCE_HEADING, "", f"MLflow run `{run['run_id']}`: {link}", ""]
    rows = {"commit": f"{params.get('git_commit')} (clean)", **{k: params.get(k) for k in PROVENANCE_PARAMS}}
    rows["run by"] = f"{tags.get('principal')} via {tags.get('transport')}"
    lines += _table(rows, ("pin", "value")) + ["", "### Metrics", ""] + _table(metrics, ("metric", "value"))
    lines += ["", "### Baseline", ""] + (_table(baseline, ("metric", "value")) if baseline else ["No baseline metrics were logged."])
    lines += ["", "### Gate receipt", "", *_receipt_block(receipt, receipt_chars), ""]
    lines += [f"mlgate-run-id: {run['run_id']}", f"mlgate-commit: {params.get('git_commit')}"]
    return "\n".join(lines) + "\n"


# --- gather -----------------------------------------------------------------------------------


def _secret_parts(request: OpenPrInput) -> list[str]:
    return [name for name, text in (("title", request.title), ("body", request.body)) if text and secret_kind_of_value(text)]


def _experiment_at(ctx: CallContext, commit: str) -> Any:
    raw = ctx.ports.git.show(commit, EXPERIMENT_PATH)
    if raw is None:
        return None
    try:
        return ctx.ports.configs.parse(raw.decode("utf-8"), ctx.config["policy"]["documents"], EXPERIMENT_PATH)
    except (InvalidInput, UnicodeDecodeError):
        return None


def _diff_facts(ctx: CallContext, commit: str) -> dict[str, Any]:
    """changed paths and added lines between the merge base with the protected ref and C."""
    repo, protected = ctx.ports.git, ctx.ports.settings.protected_ref
    on_base = repo.resolve(protected) is not None and repo.is_ancestor(commit, protected)
    base = (repo.merge_base(protected, commit) if repo.resolve(protected) else None) or EMPTY_TREE
    paths = repo.changed_paths(base, commit)
    limit = int(ctx.config["policy"]["pull_requests"]["max_changed_paths"])
    if len(paths) > limit:
        raise InvalidInput(f"the change touches {len(paths)} paths, more than the {limit} a PR may carry", "split the work into smaller commits and PRs", rule_id="pr.diff_too_large")
    return {"commit_on_base": on_base, "base_commit": base, "changed_paths": paths, "added_lines": repo.added_lines(base, commit), "experiment": _experiment_at(ctx, commit)}


NO_DIFF = {"commit_on_base": False, "base_commit": None, "changed_paths": [], "added_lines": {}, "experiment": None}


PR_AGAIN = "open a PR for a run as run_experiment or reproduce finished it: run the experiment again"


def gather(request: OpenPrInput, ctx: CallContext) -> dict[str, Any]:
    """Facts for policies/provenance.py. Raises NotFound for an unknown run or one of another
    project (a deny), IntegrityError for a PR record that cannot be read or a run whose figures or
    pins are not as the audit chain recorded them."""
    ports = ctx.ports
    run = dict(ports.tracking.get_run(request.run_id))
    require_project_run(ports.tracking, ctx.config["standards"], run)
    ports.prs.records.list()  # a record that cannot be read refuses the call now, before anything is pushed
    # A PR cites the run's figures and commit to its reviewers: only as the audit chain recorded them
    # (a run finished before runs were chained: as mlgate evaluated it). A run that did not finish
    # has no record to check; pr.run_succeeded refuses it with its status.
    if run.get("status") == "FINISHED":
        run = vouched_run(ctx, run, legacy_ok=True, remediation=PR_AGAIN)
    commit = str((run.get("params") or {}).get("git_commit", ""))
    commit = commit if COMMIT.match(commit) else None
    branch = request.branch if request.branch is not None else default_branch(request.run_id)
    problem = branch_problem(branch)
    known = commit is not None and ports.git.has_commit(commit)
    facts: dict[str, Any] = {
        "principal": ctx.principal,
        "run": run,
        "commit": commit,
        "branch": branch,
        "branch_problem": problem,
        "branch_head": ports.git.branch_head(branch) if problem is None else None,
        "protected_ref": ports.settings.protected_ref,
        "commit_known": known,
        "in_force": ports.approvals.in_force() if ports.approvals is not None else {},
        "secret_findings": _secret_parts(request),
        "run_files": run_files_check(ports.git, run.get("params") or {}) if known else {"recorded": False, "mismatched": []},
        **(_diff_facts(ctx, commit) if known else NO_DIFF),
    }
    facts["gate_receipt"] = shown_receipt(ports.run_artifacts.read_json(request.run_id, GATE_RECEIPT)) if ports.run_artifacts is not None else None
    facts["description"] = _description(request, facts, ctx)
    return facts


def _description(request: OpenPrInput, facts: Mapping[str, Any], ctx: CallContext) -> str:
    link = run_link(facts["run"], ctx.ports.settings.pull_requests.mlflow_ui_url)
    return describe(facts["run"], request.body, facts["gate_receipt"], link, int(ctx.config["policy"]["pull_requests"]["receipt_chars"]))


# --- execute ----------------------------------------------------------------------------------


def _moved(branch: str, found: str | None, commit: str, where: str) -> GitRefused:
    return GitRefused(
        f"{where} branch {branch} moved to {found} while the PR was being opened; the run measured {commit}",
        "nothing was recorded; run_experiment on the branch's current head and call open_pr with that run",
        rule_id="pr.branch_moved",
    )


def _push_and_confirm(ctx: CallContext, branch: str, commit: str) -> None:
    """Push exactly C (the branch exists locally), and confirm both heads are still C. Raises
    GitRefused when either head moved."""
    repo, provider = ctx.ports.git, ctx.ports.prs
    head = repo.branch_head(branch)
    if head != commit:
        raise _moved(branch, head, commit, "local")
    provider.push(commit, branch)
    remote = provider.remote_head(branch)
    if remote != commit:
        raise _moved(branch, remote, commit, "remote")
    head = repo.branch_head(branch)
    if head != commit:
        raise _moved(branch, head, commit, "local")


def _draft(request: OpenPrInput, facts: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
    metrics, baseline = split_metrics(facts["run"].get("metrics") or {})
    return {
        "branch": facts["branch"], "base": facts["protected_ref"], "base_commit": facts["base_commit"], "commit": facts["commit"],
        "run_id": request.run_id, "title": request.title, "description": facts["description"],
        "metrics": metrics, "baseline": baseline, "gate_receipt": facts["gate_receipt"],
        "opened_by": {"name": ctx.principal.name, "role": ctx.principal.role, "transport": ctx.transport}, "now": ctx.ports.clock.iso(),
    }  # fmt: skip


SHOWN_PATHS = 50  # the dry run and the real call list the same first paths (a PR may touch max_changed_paths)


def _open(request: OpenPrInput, facts: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
    created = ctx.ports.git.create_branch(facts["branch"], facts["commit"])
    try:
        _push_and_confirm(ctx, facts["branch"], facts["commit"])
        record, changed = ctx.ports.prs.submit(_draft(request, facts, ctx))
    except BaseException:
        if created:  # a retry must not find a local branch this failed call made
            ctx.ports.git.remove_created_branch(facts["branch"], facts["commit"])
        raise
    return {
        "decision": "allow", "run_id": request.run_id, "commit": facts["commit"], "branch": facts["branch"],
        "branch_created": created, "pr": {k: record[k] for k in ("id", "number", "provider", "url", "state")},
        "pr_changed": changed, "changed_paths": facts["changed_paths"][:SHOWN_PATHS],
    }  # fmt: skip


async def execute(request: OpenPrInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    ctx.audit_refs.update(run_id=request.run_id, commit=facts["commit"])
    return await anyio.to_thread.run_sync(_open, request, facts, ctx)


WITHHELD = "[withheld: the PR text looks like it carries a credential]"


def preview(request: OpenPrInput, facts: dict[str, Any]) -> dict[str, Any]:
    """What would be pushed and recorded. PR text that looks like a credential is not echoed (a
    refused dry run still previews): results reach transcripts and logs."""
    leaky = bool(facts["secret_findings"])
    return {
        "run_id": request.run_id, "commit": facts["commit"], "branch": facts["branch"],
        "would_create_branch": facts["branch_head"] is None, "changed_paths": facts["changed_paths"][:SHOWN_PATHS],
        "title": WITHHELD if leaky else request.title, "description": WITHHELD if leaky else facts["description"],
    }  # fmt: skip


_RULES = load_all()
RULE_IDS = (
    "role.known", "role.agents_cannot_touch_main", "pr.branch_allowed", "pr.run_succeeded", "pr.run_clean",
    "pr.commit_is_branch_head", "pr.has_changes", "pr.training_guard", "pr.protected_fields_unchanged",
    "pr.standards_unchanged", "pr.no_secrets",
)  # fmt: skip
SPEC = ToolSpec(
    name="open_pr",
    title="Open a pull request for a run",
    description=(
        "Put the committed work a run measured on a feature branch (agent/..., never main) and open a PR whose "
        "description cites the MLflow run, its metrics, baseline and gate receipt. The run must have FINISHED from "
        "a clean commit; that commit must be (or becomes) the branch head; the change may not add training calls or "
        "move protected fields. Use dry_run to see the decision first."
    ),
    input_model=OpenPrInput,
    rules=tuple(_RULES[r] for r in RULE_IDS),
    gather=gather,
    execute=execute,
    preview=preview,
    idempotent=True,
)
