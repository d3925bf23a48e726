"""promote: the gate between research and approved models (DESIGN §3, issue 5).

Every gate of policies/promotion.py is checked against facts re-read now, not trusted from the
run: the dataset is re-hashed, the commit is looked up on the recorded PR branches, the config is
rebuilt from the run's params and checked against its hash, the reproduction and seed runs are
re-compared. The gate receipt (each gate PASS/FAIL/SKIPPED with observed values) comes back either
way. PASS registers the run's model as a version of `<client>-<project>` (once per run: promoting
again reuses it), points the alias at it, tags the version (promoted, promotion_timestamp, model
card fields) and logs model_card.json to the run. `champion` needs a human approval bound to this
exact promotion: a denial for that alone opens one (`mlgate approvals approve ID`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from pydantic import Field

from policies import Verdict
from policies.promotion import metric_differences, receipt, receipt_passed
from policies.provenance import COMMIT, branch_problem
from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.champion_pairing import champion_paired, unpaired
from tools.errors import GovernanceError, NotFound
from tools.gates import gate_receipt
from tools.experiment_schema import EXPERIMENT_PATH
from tools.lifecycle import model_name
from tools.sealed import count_query, sealed_entry
from tools.promotion_move import promote_run
from tools.provenance import sha256_json
from tools.run_pins import REPRODUCTION_OF, pin_mismatches, rebuild_config, rerun_seed, reruns, run_files_check
from tools.run_record import vouched_run
from tools.run_views import require_project_run

REPRODUCTION_TAG, SEED_RUNS_TAG, REPRODUCES_TAG = "mlgate.reproduction_run_id", "mlgate.seed_run_ids", "mlgate.reproduction_of"
APPROVAL_RULE = "promotion.human_approval"
MAX_SEED_RUNS = 20  # seed re-runs read per promotion (the policy asks for a few)


class PromoteInput(StrictInput):
    run_id: str = Field(description="MLflow run id (32 lowercase hex) of a FINISHED run whose commit is on a recorded PR branch.", pattern=r"^[0-9a-f]{32}$")
    alias: Literal["candidate", "champion"] = Field("candidate", description="candidate (agents may set it) or champion (humans only, with an approval, a passing reproduction and the seed check).")
    dry_run: bool = Field(False, description="Check every gate and return the receipt; register nothing.")


def promotion_hash(model: str, run_id: str, alias: str, replacing: str | None) -> str:
    """What a champion approval is bound to (domain-separated from config change hashes): the run,
    and the version it replaces, as the approver read it ("version 2 -> run X"). Once another
    promotion moves the alias, an approval given to replace the old champion no longer applies."""
    return sha256_json({"kind": "mlgate.promotion.v2", "model": model, "run_id": run_id, "alias": alias, "replacing": replacing})


# --- gather ---------------------------------------------------------------------------------


def _pr_reach(ctx: CallContext, commit: str) -> list[dict[str, Any]]:
    """Open PR records whose branch (its workspace head or its recorded commit) contains `commit`;
    a head counts only when open_pr pushed it (the audit chain's record, server/audit/pr_vouch.py):
    PR records and branches are files and refs an agent can write."""
    repo, records = ctx.ports.git, getattr(ctx.ports.prs, "records", None)
    pushed = ctx.ports.pushed_commits
    vouched = pushed.commits() if pushed is not None else set()  # no record of pushes: no head counts
    reach = []
    for record in records.list() if records is not None else []:
        if record.get("state") != "open" or branch_problem(record.get("branch")) is not None:
            continue
        heads = {h for h in (repo.branch_head(record["branch"]), record.get("commit")) if isinstance(h, str) and COMMIT.match(h)}
        heads &= vouched
        head = next((h for h in sorted(heads) if repo.is_ancestor(commit, h)), None)
        if head is not None:
            reach.append({"pr": record.get("id"), "branch": record["branch"], "head": head})
    return reach


def _dataset(ctx: CallContext, recorded: Any) -> dict[str, Any]:
    try:
        ctx.ports.cas.verify(str(recorded), int(ctx.config["policy"]["datasets"]["max_files"]))
    except GovernanceError as exc:
        return {"recorded": recorded, "verified": False, "reason": exc.reason}
    return {"recorded": recorded, "verified": True, "reason": "verified"}


def _run_config(ctx: CallContext, params: Mapping[str, str], commit: str | None) -> dict[str, Any] | None:
    committed = None
    if commit is not None:
        raw = ctx.ports.git.show(commit, EXPERIMENT_PATH)
        try:
            committed = ctx.ports.configs.parse(raw.decode("utf-8"), ctx.config["policy"]["documents"], EXPERIMENT_PATH) if raw else None
        except (GovernanceError, UnicodeDecodeError):
            committed = None
    return rebuild_config(params, committed)


PROMOTE_AGAIN = "promote a run as run_experiment or reproduce finished it: run the experiment again"


def _vouched_run(ctx: CallContext, run: dict[str, Any], *, legacy_ok: bool = False) -> dict[str, Any]:
    return vouched_run(ctx, run, legacy_ok=legacy_ok, remediation=PROMOTE_AGAIN)


def _other_run(ctx: CallContext, run_id: str | None, *, legacy_ok: bool = False) -> dict[str, Any] | None:
    if not run_id:
        return None
    try:
        return _vouched_run(ctx, dict(ctx.ports.tracking.get_run(run_id)), legacy_ok=legacy_ok)
    except NotFound:
        return None


def _reproduction(ctx: CallContext, run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reproduction the run's tags point at, judged on what the chain vouches for: the re-run's
    params (which must say reproduce made it to re-run this run with its seed) and its metrics.
    The tags are MLflow's, which an agent can write; they only say where to look."""
    tags = run.get("tags") or {}
    other = _other_run(ctx, tags.get(REPRODUCTION_TAG))
    if tags.get("reproduced") is None and other is None:
        return None
    found = {"recorded": tags.get("reproduced"), "run_id": tags.get(REPRODUCTION_TAG), "status": None, "pins_mismatched": [], "differences": {}}
    if other is not None:
        mismatched = pin_mismatches(run["params"], other["params"], same_seed=True)
        if not reruns(run["run_id"], "same_seed", other["params"]):
            mismatched.append(REPRODUCTION_OF)
        found.update(status=other["status"], pins_mismatched=mismatched, differences=metric_differences(run["metrics"], other["metrics"]))
    return found


def _seed(run: Mapping[str, Any]) -> int | None:
    text = str(run["params"].get("seed", ""))
    return int(text) if text.isdigit() else None


def _seed_runs(ctx: CallContext, run: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """The primary metric of the run and of its recorded seed re-runs, each checked (_seed_run_problem)."""
    seeds, values, problems = [_seed(run)], [run["metrics"].get(metric)], []
    for run_id in list(filter(None, ((run.get("tags") or {}).get(SEED_RUNS_TAG) or "").split(",")))[:MAX_SEED_RUNS]:
        other = _other_run(ctx, run_id)
        problem = _seed_run_problem(run, other, seeds)
        if problem is not None:
            problems.append(f"seed run {run_id[:12]} {problem}")
            continue
        seeds.append(_seed(other))
        values.append(other["metrics"].get(metric))
    return {"seeds": seeds, "values": values, "problems": problems}


def _seed_run_problem(run: Mapping[str, Any], other: Mapping[str, Any] | None, seeds: list[int | None]) -> str | None:
    """Why `other` is no seed re-run of `run` that counts after `seeds`. Its vouched params must say
    reproduce made it as a seed re-run of this run, with the next seed after the run's: runs an agent
    made with seeds of its choosing are no evidence of stability."""
    if other is None or other["status"] != "FINISHED" or not reruns(run["run_id"], "seed", other["params"]) or pin_mismatches(run["params"], other["params"], same_seed=False):
        return "is missing, unfinished or not a seed re-run reproduce made of this run"
    if _seed(other) in seeds:
        return f"repeats seed {_seed(other)}"
    expected = None if seeds[0] is None else rerun_seed(seeds[0], len(seeds))
    return None if _seed(other) == expected else f"has seed {_seed(other)}, not the next seed {expected}"


def _variance(seed_runs: Mapping[str, Any]) -> float | None:
    """Sample variance (n - 1) of the primary metric across seeds; None with fewer than 2."""
    values = seed_runs["values"]
    return statistics.variance(values) if len(values) >= 2 and all(isinstance(v, (int, float)) for v in values) else None


def _champion_run(ctx: CallContext, model: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the current champion's run, None), (None, None) when there is no champion, or (None, why)
    when the alias points at a version whose run cannot be read: the champion gate then fails
    instead of reading as "no champion yet" (a deleted or purged run must not lift the bar)."""
    version = ctx.ports.registry.standing(model, "champion")
    if version is None:
        return None, None
    run_id = ctx.ports.registry.version(model, version)["run_id"]
    champion = _other_run(ctx, run_id, legacy_ok=True)
    if champion is None:
        return None, f"the champion (version {version}) has no readable run {run_id} in the tracking store"
    return champion, None


def _paired(run: Mapping[str, Any], name: str, metric: str, confidence: float) -> dict[str, Any] | None:
    """A paired comparison run_experiment logged on the test rows (tools/paired.as_metrics)."""
    metrics = run["metrics"]
    if f"test_{name}_lcb" not in metrics:
        return None
    return {"metric": metric, "improvement": metrics.get(f"test_{name}"), "lower_bound": metrics.get(f"test_{name}_lcb"), "confidence": confidence}


def _metric_gates(ctx: CallContext, run: Mapping[str, Any], found: tuple[Mapping[str, Any] | None, str | None], variance: float | None) -> dict[str, Any]:
    """The metric gates on the sealed test figures (plus the calibration gate every workspace gets);
    `found` is _champion_run's answer."""
    champion, promotion = found[0], ctx.config["policy"]["promotion"]
    gates = {**(ctx.config["standards"].get("gates") or {}), "calibration_vs_prior": promotion["calibration_margin"]}
    metric, confidence = str(gates.get("primary_metric", "roc_auc")), float(promotion["gate_confidence"])
    paired = champion_paired(ctx, run, champion, metric, _seed(run) or 0)
    observed = {
        "primary_metric": run["metrics"].get(f"test_{metric}"),
        "baseline_primary_metric": run["metrics"].get(f"baseline_logistic_regression_{metric}"),
        "champion_unreadable": _champion_unreadable(found, metric),
        "champion_primary_metric": None if champion is None else champion["metrics"].get(f"test_{metric}"),
        "champion_paired": paired,
        "champion_unpaired": None if champion is None or paired is not None or champion["run_id"] == run["run_id"] else unpaired(ctx, run, champion),
        "seed_variance": variance,
        "baseline_paired": _paired(run, "baseline_paired", metric, confidence),
        "calibration_paired": _paired(run, "calibration_paired", str(promotion["calibration_metric"]), confidence),
    }
    return {e["gate"]: e for e in gate_receipt(gates, {k: v for k, v in observed.items() if v is not None})}


def _champion_unreadable(found: tuple[Mapping[str, Any] | None, str | None], metric: str) -> str | None:
    """Why a champion exists but its test figure cannot be read (fails the champion gate), or None."""
    champion, problem = found
    if champion is not None and not isinstance(champion["metrics"].get(f"test_{metric}"), (int, float)):
        return f"the champion's run {champion['run_id']} holds no test_{metric}"
    return problem


def _gates_for(ctx: CallContext, gates: dict[str, Any]) -> dict[str, Any]:
    """`metric_gates` (what the rules, denials and receipt show) and `sealed_metric_gates` (the
    figures, for the model card): an agent sees PASS/FAIL and thresholds, never test figures."""
    shown = gates if ctx.principal.is_human else {name: sealed_entry(e) for name, e in gates.items()}
    return {"metric_gates": shown, "sealed_metric_gates": gates}


def _approval(ctx: CallContext, model: str, run_id: str, alias: str, replacing: str | None) -> dict[str, Any] | None:
    live = ctx.ports.approvals.live_for(promotion_hash(model, run_id, alias, replacing))
    return None if live is None else {k: live.get(k) for k in ("id", "status", "change_hash", "decided_by", "decided_at")}


def _lifecycle(ctx: CallContext, model: str, request: PromoteInput) -> dict[str, Any]:
    """The run's version and its stage now, for lifecycle.transition (champion only from candidate)."""
    version = ctx.ports.registry.version_for_run(model, request.run_id)
    registry = ctx.ports.registry
    return {"action": "promote", "version": version, "stage": registry.stage(model, version), "recorded": registry.recorded_stage(model, version), "target": request.alias}


def gather(request: PromoteInput, ctx: CallContext) -> dict[str, Any]:
    """Facts for policies/promotion.py. Raises NotFound for an unknown run or one of another
    project (a deny)."""
    ports, standards = ctx.ports, ctx.config["standards"]
    run = dict(ports.tracking.get_run(request.run_id))
    require_project_run(ports.tracking, standards, run)
    run = _vouched_run(ctx, run)
    params, model = run["params"], model_name(standards)
    commit = params.get("git_commit") if COMMIT.match(str(params.get("git_commit", ""))) else None
    known = commit is not None and ports.git.has_commit(commit)
    metric = f"test_{(standards.get('gates') or {}).get('primary_metric', 'roc_auc')}"
    seed_runs = _seed_runs(ctx, run, metric)
    found_champion = _champion_run(ctx, model)
    return {
        "principal": ctx.principal, "alias": request.alias, "run": run, "model": model,
        "model_logged": ports.registry.has_model_artifact(request.run_id),
        "commit_known": known, "pr_reach": _pr_reach(ctx, commit) if known else [],
        "run_files": run_files_check(ports.git, params) if known else {"recorded": False, "mismatched": []},
        "dataset": _dataset(ctx, params.get("dataset_content_hash")),
        "run_config": _run_config(ctx, params, commit if known else None),
        **_gates_for(ctx, _metric_gates(ctx, run, found_champion, _variance(seed_runs))),
        "reproduction": _reproduction(ctx, run), "seed_runs": seed_runs,
        "run_version": ports.registry.version_for_run(model, request.run_id),
        "lifecycle": _lifecycle(ctx, model, request), **_alias_facts(ctx, model, request),
    }  # fmt: skip


def _alias_facts(ctx: CallContext, model: str, request: PromoteInput) -> dict[str, Any]:
    """Where the alias points (MLflow), where mlgate's witnessed history says it points, the
    version this promotion replaces (the recorded one; MLflow's only for a history not kept yet),
    and the live approval bound to this run replacing that version."""
    current, recorded = ctx.ports.registry.alias_version(model, request.alias), (ctx.ports.registry.stack(model, request.alias) or [None])[-1]
    replacing = recorded if recorded is not None else current
    approval = _approval(ctx, model, request.run_id, request.alias, replacing)
    return {"alias_version": current, "alias_recorded": recorded, "replacing": replacing, "approval": approval}


# --- deny, preview --------------------------------------------------------------------------


def _summary(request: PromoteInput, facts: Mapping[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    # The rows and positive labels the test metrics rest on: 3 defaults make any roc_auc a coin toss.
    metrics = facts["run"].get("metrics") or {}
    window = {k: int(metrics[f"split_test_{k}"]) for k in ("rows", "positives") if f"split_test_{k}" in metrics}
    return {"run_id": request.run_id, "model": facts["model"], "alias": request.alias, "test_window": window or None, "gate_receipt": {"gates": entries, "passed": receipt_passed(entries)}}


def preview(request: PromoteInput, facts: dict[str, Any]) -> dict[str, Any]:
    """The receipt and what would happen (dry runs, allowed or denied)."""
    return {**_summary(request, facts, facts["receipt"]), "would_register": facts["run_version"] is None, "current_version": facts["alias_version"]}


def _request_approval(request: PromoteInput, facts: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
    subject = f"{facts['model']}@{request.alias}"
    current = f"version {facts['replacing']}" if facts["replacing"] else "no version"
    change = [{"path": subject, "old": current, "new": f"run {request.run_id}"}]
    record, created = ctx.ports.approvals.request(
        change_hash=promotion_hash(facts["model"], request.run_id, request.alias, facts["replacing"]), target=subject, diff=change, fields=change,
        requester=ctx.principal, reasoning={"run_id": request.run_id, "metrics": facts["run"]["metrics"]}, now=ctx.ports.clock.iso(), kind="promotion",
    )  # fmt: skip
    step = f"a human runs `mlgate approvals approve {record['id']}`, then calls promote again" if record["status"] == "pending" else _settled_step(record)
    return {"approval_id": record["id"], "approval_status": record["status"], "approval_created": created, "next_step": step}


def _settled_step(record: Mapping[str, Any]) -> str:
    if record["status"] == "denied":
        return f"approval {record['id']} for this exact promotion was denied by {record.get('decided_by')}; decisions are final: promote another run"
    return f"approval {record['id']} is {record['status']}"


def on_deny(request: PromoteInput, facts: dict[str, Any], verdict: Verdict, ctx: CallContext) -> dict[str, Any]:
    """The receipt lists every failed gate. A human's champion promotion without its approval
    opens (or reuses) a pending approval bound to this exact promotion even when other gates fail
    too, so review can start at once; the denial names it and says the other gates must pass."""
    extra = _summary(request, facts, facts["receipt"])
    denied = {d.rule_id for d in verdict.denials}
    if APPROVAL_RULE in denied and all(r.startswith("promotion.") for r in denied):
        extra.update(_request_approval(request, facts, ctx))
        others = sorted(denied - {APPROVAL_RULE})
        if others:
            extra["next_step"] += f"; the other failed gates must pass too: {', '.join(others)}"
    return extra


def with_receipt(gather_facts: Any) -> Any:
    """Gather, then attach the receipt computed by the same gate functions the rules use. Every
    receipt judges the sealed test figures, so each counts one test-set query of the dataset."""

    def gather_with_receipt(request: PromoteInput, ctx: CallContext) -> dict[str, Any]:
        facts = gather_facts(request, ctx)
        facts["receipt"] = receipt(facts, ctx.config)
        facts["test_queries"] = count_query(ctx.ports, facts["run"]["params"].get("dataset_content_hash"), purpose=f"gates checked by promote ({request.alias})", run_id=request.run_id, principal=ctx.principal.name)
        return facts

    return gather_with_receipt


# --- execute ----------------------------------------------------------------------------------


async def execute(request: PromoteInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    params = facts["run"]["params"]
    ctx.audit_refs.update(run_id=request.run_id, commit=str(params.get("git_commit")), dataset_hash=str(params.get("dataset_content_hash")))
    result = {"decision": "allow", **_summary(request, facts, facts["receipt"]), "previous_version": facts["alias_version"]}
    return await anyio.to_thread.run_sync(promote_run, request, facts, ctx, result)


_RULES = load_all()
RULE_IDS = (
    "role.known", "standards.no_drift", "role.agents_cannot_set_champion", "promotion.run_succeeded", "promotion.run_clean",
    "promotion.model_logged", "promotion.commit_on_pr_branch", "promotion.dataset_verified", "promotion.protected_fields",
    "promotion.standards_current", "promotion.min_primary_metric", "promotion.min_lift_over_baseline", "promotion.champion_tolerance",
    "promotion.calibration_vs_prior", "promotion.reproduced", "promotion.max_seed_variance", "promotion.human_approval", "leakage.not_flagged", "lifecycle.transition", "lifecycle.stage_recorded",
)  # fmt: skip
SPEC = ToolSpec(
    name="promote",
    title="Promote a run's model",
    description=(
        "Register a run's model in the MLflow registry under an alias after re-checking every promotion gate: run "
        "finished and clean, commit on a recorded PR branch, dataset re-verified, protected fields == standards, "
        "metric >= floor, lift over the baseline and calibration against the class prior (paired bootstrap on the "
        "same test rows), >= champion - tolerance; agents see PASS/FAIL only (the test set is sealed); champion also needs a passing reproduction, the seed "
        "variance check and a human approval. Agents may set candidate only. Returns the gate receipt either way; "
        "promoting the same run again creates no new version. Use dry_run to see the receipt."
    ),
    input_model=PromoteInput,
    rules=tuple(_RULES[r] for r in RULE_IDS),
    gather=with_receipt(gather),
    execute=execute,
    preview=preview,
    on_deny=on_deny,
    idempotent=True,
)
