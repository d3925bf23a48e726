"""Promotion gates, reproduction and rollback rules (DESIGN §3 promote, §4 promotion gates, roles).

Every promotion gate is a pure function `(facts, config) -> entry` where an entry is
`{gate, status, observed, threshold, reason}` and status is PASS, FAIL or SKIPPED (a gate that does
not apply to this alias). The rule of a gate denies exactly when its entry FAILs, and the gate
receipt a promotion returns is the list of every entry, so the receipt and the decision never
disagree. Promote facts are a mapping gathered by tools/promote.py:

    principal      Principal
    alias          "candidate" or "champion"
    run            the MLflow run {run_id, status, params, metrics, tags}
    model_logged   the run has a model/ artifact to register
    commit_known   the run's git_commit exists in the workspace repository
    pr_reach       [{pr, branch, head}] recorded PRs whose branch contains the run's commit
    dataset        {recorded, verified, reason}: the CAS directory re-hashed now
    run_config     the run's experiment config rebuilt from its params (None when it cannot be)
    metric_gates   {gate: entry} from the server-side gate arithmetic (tools/evaluation.gate_receipt)
    reproduction   {recorded, run_id, status, pins_mismatched, differences} or None
    seed_runs      {seeds, values, problems}: the primary metric of the original and its seed re-runs
    approval       the live approval bound to this promotion {id, status, decided_by} or None
    run_version    the registry version already holding this run, or None
    alias_version  the version the alias points at now, or None
    alias_recorded the version mlgate's alias history (witnessed by the audit chain) last gave the
                   alias, or None: MLflow's pointer is a row anyone with the store can move
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from policies.decision import Decision, rule
from policies.principal import Principal
from policies.provenance import COMMIT, protected_deviations, run_files_problem

SOURCE = "DESIGN.md §3 promote, §4 promotion gates"
ROLE_SOURCE = "DESIGN.md §4 roles"
ALIASES = ("candidate", "champion")
METRIC_GATES = ("min_primary_metric", "min_lift_over_baseline", "champion_tolerance")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}\Z")
Entry = dict[str, Any]


# --- pure helpers (also used by tools/reproduce.py) ---------------------------------------------


def entry(gate: str, status: str, observed: Any, threshold: Any, reason: str) -> Entry:
    return {"gate": gate, "status": status, "observed": observed, "threshold": threshold, "reason": reason}


def metric_differences(original: Mapping[str, Any], reproduced: Mapping[str, Any], prefix: str = "test_") -> dict[str, float | None]:
    """|original - reproduced| of every `prefix` metric the original run logged (None: not reproduced)."""
    differences: dict[str, float | None] = {}
    for name, value in sorted(original.items()):
        if name.startswith(prefix):
            other = reproduced.get(name)
            differences[name] = None if other is None or value is None else abs(float(value) - float(other))
    return differences


def reproduction_passes(differences: Mapping[str, float | None], tolerance: float) -> bool:
    """True when there was something to compare and every metric reproduced within `tolerance`."""
    return bool(differences) and all(d is not None and d <= tolerance for d in differences.values())


def worst_difference(differences: Mapping[str, float | None]) -> float | None:
    known = [d for d in differences.values() if d is not None]
    return max(known) if known and len(known) == len(differences) else None


def _params(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    run = facts.get("run")
    return (run.get("params") or {}) if isinstance(run, Mapping) else {}


def _champion(facts: Mapping[str, Any]) -> bool:
    return facts.get("alias") == "champion"


def _promotion(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return config["policy"]["promotion"]


# --- the gates ----------------------------------------------------------------------------------


def gate_run_succeeded(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    status = facts["run"].get("status") if isinstance(facts.get("run"), Mapping) else None
    ok = status == "FINISHED"
    return entry("run_succeeded", "PASS" if ok else "FAIL", status, "FINISHED", "the run finished" if ok else f"the run's status is {status}, not FINISHED")


def gate_run_clean(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    params = _params(facts)
    observed = {"git_commit": params.get("git_commit"), "git_dirty": params.get("git_dirty"), "run_files": facts.get("run_files")}
    ok = params.get("git_dirty") == "false" and bool(COMMIT.match(str(params.get("git_commit", ""))))
    problem = None if not ok else run_files_problem(facts.get("run_files"))
    reason = problem or ("made from a clean commit" if ok else "the run was made from uncommitted changes or records no commit")
    return entry("run_clean", "PASS" if ok and problem is None else "FAIL", observed, {"git_dirty": "false", "run_files": "the blobs at the commit"}, reason)


def gate_model_logged(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    ok = facts["model_logged"] is True
    return entry("model_logged", "PASS" if ok else "FAIL", ok, True, "the run logged a model artifact" if ok else "the run has no model/ artifact to register")


def gate_commit_on_pr_branch(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    reach = list(facts["pr_reach"] or [])
    observed = [f"{r['pr']} ({r['branch']})" for r in reach]
    if not facts["commit_known"]:
        return entry("commit_on_pr_branch", "FAIL", observed, "a recorded PR branch contains the commit", "the run's commit is not in the workspace repository")
    if not reach:
        return entry("commit_on_pr_branch", "FAIL", observed, "a recorded PR branch contains the commit", "no recorded PR branch contains the run's commit")
    return entry("commit_on_pr_branch", "PASS", observed, "a recorded PR branch contains the commit", f"reachable from {observed[0]}")


def gate_dataset_verified(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    dataset = facts["dataset"]
    ok = dataset.get("verified") is True
    return entry("dataset_verified", "PASS" if ok else "FAIL", dataset.get("recorded"), "content hash re-verified", "the dataset's bytes still hash to the recorded content hash" if ok else str(dataset.get("reason")))


def gate_protected_fields(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    protected = config["standards"].get("protected_fields") or {}
    if not isinstance(facts["run_config"], Mapping):
        return entry("protected_fields", "FAIL", None, dict(protected), "the run's config cannot be rebuilt from its params (config_hash does not match)")
    found = protected_deviations(facts["run_config"], protected, {})
    observed = {d["path"]: d["value"] for d in found}
    reason = "every protected field holds the standards' value" if not found else "protected fields differ from the standards: " + ", ".join(f"{p}={v}" for p, v in observed.items())
    return entry("protected_fields", "FAIL" if found else "PASS", observed, dict(protected), reason)


def gate_standards_current(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    recorded, current = _params(facts).get("standards_sha256"), config["standards_sha256"]
    ok = recorded == current
    return entry("standards_current", "PASS" if ok else "FAIL", recorded, current, "the run was judged by the standards in force" if ok else "the standards changed since the run")


def _metric_gate(name: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Entry]:
    def gate(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
        found = (facts["metric_gates"] or {}).get(name)
        if not isinstance(found, Mapping) or found.get("status") not in ("PASS", "FAIL", "SKIPPED"):
            return entry(name, "FAIL", None, None, f"the standards define no {name} gate, so it cannot pass")
        return entry(name, str(found["status"]), found.get("observed"), found.get("threshold"), str(found.get("reason")))

    return gate


def _reproduction_problem(reproduction: Any, tolerance: float) -> str | None:
    if not isinstance(reproduction, Mapping) or reproduction.get("recorded") != "true" or not reproduction.get("run_id"):
        return "no passing reproduction is recorded for this run"
    if reproduction.get("status") != "FINISHED":
        return f"the reproduction run {reproduction.get('run_id')} is {reproduction.get('status')}, not FINISHED"
    if reproduction.get("pins_mismatched"):
        return f"the reproduction run does not share the run's pins: {', '.join(reproduction['pins_mismatched'])}"
    if not reproduction_passes(reproduction.get("differences") or {}, tolerance):
        return f"metrics differ from the reproduction by more than {tolerance:g} (largest {worst_difference(reproduction.get('differences') or {})})"
    return None


def gate_reproduced(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    tolerance = float(_promotion(config)["reproduction_tolerance"])
    reproduction = facts["reproduction"]
    observed = None if not isinstance(reproduction, Mapping) else {"run_id": reproduction.get("run_id"), "max_difference": worst_difference(reproduction.get("differences") or {})}
    problem = _reproduction_problem(reproduction, tolerance)
    if not _champion(facts):
        return entry("reproduced", "SKIPPED", observed, tolerance, "required for champion only")
    return entry("reproduced", "FAIL" if problem else "PASS", observed, tolerance, problem or f"reproduced within {tolerance:g}")


def gate_max_seed_variance(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    wanted, seeds = int(_promotion(config)["seeds"]), facts["seed_runs"] or {}
    found = (facts["metric_gates"] or {}).get("max_seed_variance") or {}
    observed = {"variance": found.get("observed"), "seeds": list(seeds.get("seeds") or [])}
    if not _champion(facts):
        return entry("max_seed_variance", "SKIPPED", observed, found.get("threshold"), "required for champion only")
    problems = list(seeds.get("problems") or [])
    if len(set(observed["seeds"])) < wanted:
        problems.append(f"{len(set(observed['seeds']))} of {wanted} seeds measured")
    if problems or found.get("status") != "PASS":
        return entry("max_seed_variance", "FAIL", observed, found.get("threshold"), "; ".join(problems) or str(found.get("reason", "not measured")))
    return entry("max_seed_variance", "PASS", observed, found.get("threshold"), str(found.get("reason")))


def gate_human_approval(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Entry:
    approval = facts["approval"]
    observed = None if not isinstance(approval, Mapping) else {k: approval.get(k) for k in ("id", "status", "decided_by")}
    if not _champion(facts):
        return entry("human_approval", "SKIPPED", observed, "approved", "required for champion only")
    if facts["run_version"] is not None and facts["run_version"] == facts["alias_version"] == facts["alias_recorded"]:
        return entry("human_approval", "PASS", observed, "approved", "the run is already the champion; nothing changes")
    if isinstance(approval, Mapping) and approval.get("status") == "approved":
        return entry("human_approval", "PASS", observed, "approved", f"approved by {approval.get('decided_by')}")
    if not isinstance(approval, Mapping):
        return entry("human_approval", "FAIL", observed, "approved", "no approval for this promotion exists yet")
    if approval.get("status") == "denied":
        return entry("human_approval", "FAIL", observed, "approved", f"the approval for this promotion ({approval.get('id')}) was denied by {approval.get('decided_by')}; a denial is final for this run replacing this version")
    return entry("human_approval", "FAIL", observed, "approved", f"the approval for this promotion ({approval.get('id')}) is {approval.get('status')}")


GateCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], Entry]
# (rule id, gate, what it guards, what to do when it fails)
GATES: tuple[tuple[str, GateCheck, str, str], ...] = (
    ("promotion.run_succeeded", gate_run_succeeded, "The run FINISHED.", "promote a run that FINISHED; run_experiment again if it failed"),
    ("promotion.run_clean", gate_run_clean, "The run was made from a clean commit (git_dirty false, a full commit id, every file it used is the blob at that commit).", "commit your work, run_experiment from the clean commit, then promote that run"),
    ("promotion.model_logged", gate_model_logged, "The run logged a model artifact (model/) to register.", "promote a run made by run_experiment (it logs the model)"),
    ("promotion.commit_on_pr_branch", gate_commit_on_pr_branch, "The run's commit exists and is reachable from the branch of a recorded pull request.", "open_pr for this run first (its commit must be on a recorded PR branch)"),
    ("promotion.dataset_verified", gate_dataset_verified, "The run's dataset, re-hashed at promotion, still matches its recorded content hash.", "the dataset changed since the run: ask the operator to run `mlgate data verify` and restore it; nothing trained on changed bytes is promoted"),
    ("promotion.protected_fields", gate_protected_fields, "Every protected field of the run's config holds the standards' value (approved overrides are experiments, not promotable).", "promote only runs whose protected fields hold the standards' values; run again with them"),
    ("promotion.standards_current", gate_standards_current, "The run recorded the standards in force now (standards_sha256).", "run_experiment again under the current standards, then promote the new run"),
    ("promotion.min_primary_metric", _metric_gate("min_primary_metric"), "The primary test metric clears the standards' floor (gates.min_primary_metric).", "improve the model until it clears the standards' floor, then promote the better run"),
    ("promotion.min_lift_over_baseline", _metric_gate("min_lift_over_baseline"), "The primary test metric beats the logistic-regression baseline by gates.min_lift_over_baseline: the paired-bootstrap lower bound of the lift on the same test rows, at promotion.gate_confidence, clears it.", "the model must beat the logistic-regression baseline by the standards' margin"),
    ("promotion.champion_tolerance", _metric_gate("champion_tolerance"), "The primary test metric is at least the current champion's minus gates.champion_tolerance.", "the run trails the current champion by more than the tolerance; promote a better run"),
    ("promotion.calibration_vs_prior", _metric_gate("calibration_vs_prior"), "The model is no worse calibrated than the class-prior baseline: its gain in promotion.calibration_metric (brier or log_loss) over the prior, on the same test rows, clears promotion.calibration_margin at promotion.gate_confidence (paired bootstrap lower bound).", "the model's probabilities are worse than predicting the base rate: recalibrate (or fix the model), run again, then promote the new run"),
    ("promotion.reproduced", gate_reproduced, "Champion only: a reproduction from the run's pins passed within promotion.reproduction_tolerance.", "call reproduce with this run_id; champion needs a passing reproduction"),
    ("promotion.max_seed_variance", gate_max_seed_variance, "Champion only: the variance of the primary metric across promotion.seeds seeds is within gates.max_seed_variance.", "call reproduce with this run_id (it measures the seeds); a model whose metric swings with the seed is not a champion"),
    ("promotion.human_approval", gate_human_approval, "Champion only: a human approved this exact promotion (model, run, alias).", "a human approves this exact promotion with `mlgate approvals approve <approval_id>`, then calls promote again: an existing approval's id is in the reason; a human's promote with alias champion opens one and answers its approval_id. A denied one is final: promote another run"),
)


def receipt(facts: Mapping[str, Any], config: Mapping[str, Any]) -> list[Entry]:
    """Every gate's entry, in a fixed order. A gate that raises FAILs (fails closed)."""
    entries = []
    for rule_id, gate, _, _ in GATES:
        try:
            entries.append(gate(facts, config))
        except Exception as exc:  # noqa: BLE001 - a gate that cannot be evaluated does not pass
            entries.append(entry(rule_id.split(".", 1)[1], "FAIL", None, None, f"could not be checked ({type(exc).__name__})"))
    return entries


def receipt_passed(entries: list[Entry]) -> bool:
    return all(e["status"] != "FAIL" for e in entries)


def _register_gate(rule_id: str, gate: GateCheck, description: str, remediation: str) -> None:
    def check(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
        found = gate(facts, config)
        if found["status"] == "FAIL":
            return Decision.deny(rule_id, f"{found['gate']}: {found['reason']}", remediation)
        return Decision.allow(rule_id, f"{found['gate']}: {found['status']}")

    rule(rule_id, source=SOURCE, description=description)(check)


for _gate_rule in GATES:
    _register_gate(*_gate_rule)


# --- roles --------------------------------------------------------------------------------------


def _is_human(facts: Mapping[str, Any]) -> bool:
    principal = facts["principal"]
    return isinstance(principal, Principal) and principal.is_human


@rule("role.agents_cannot_set_champion", source=ROLE_SOURCE, description="Agents may promote to `candidate` only; `champion` is set by humans and operators (with an approval).")
def agents_cannot_set_champion(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    alias = facts["alias"]
    if alias == "candidate" or (alias in ALIASES and _is_human(facts)):
        return Decision.allow("role.agents_cannot_set_champion", f"may set {alias}")
    return Decision.deny(
        "role.agents_cannot_set_champion",
        f"agents cannot set the {alias!r} alias",
        "promote with alias candidate; a human promotes the candidate to champion after review",
    )


@rule("role.agents_cannot_rollback", source=ROLE_SOURCE, description="Only humans and operators move a model alias back (rollback); agents never do.")
def agents_cannot_rollback(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    if _is_human(facts):
        return Decision.allow("role.agents_cannot_rollback", "a human or operator rolls back")
    return Decision.deny("role.agents_cannot_rollback", "agents cannot roll back model aliases", "ask a human to run `mlgate rollback MODEL --alias ALIAS`")


# --- rollback -----------------------------------------------------------------------------------


@rule(
    "promotion.rollback_available",
    source="DESIGN.md §3 promote (rollback)",
    description="The alias has a previous version in mlgate's alias history, and points where that history says it does (not moved outside mlgate).",
)
def rollback_available(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    stack, current = list(facts["stack"] or []), facts["alias_version"]
    if current is None and not stack:
        return Decision.deny("promotion.rollback_available", f"{facts['model']}@{facts['alias']} is not set: there is nothing to roll back",
                             f"promote a run to it first (`mlgate promote RUN --alias {facts['alias']}`)")
    if not stack or stack[-1] != current:
        return Decision.deny(
            "promotion.rollback_available",
            f"{facts['model']}@{facts['alias']} points at version {current}, but mlgate's alias history ends at {stack[-1] if stack else 'nothing'}",
            "the alias was moved outside mlgate (or never set): set it with promote, then roll back",
        )
    if len(stack) < 2:
        return Decision.deny("promotion.rollback_available", f"{facts['model']}@{facts['alias']} has no previous version to return to", "promote another run to this alias instead")
    return Decision.allow("promotion.rollback_available", f"version {stack[-1]} -> {stack[-2]}")


# --- reproduce ----------------------------------------------------------------------------------


@rule("reproduce.run_finished", source="issue 5 reproduce", description="Only a run that FINISHED can be reproduced.")
def reproduce_run_finished(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    status = facts["run"].get("status") if isinstance(facts.get("run"), Mapping) else None
    if status == "FINISHED":
        return Decision.allow("reproduce.run_finished", "the run finished")
    return Decision.deny("reproduce.run_finished", f"the run's status is {status}, not FINISHED", "reproduce a run that finished")


@rule(
    "reproduce.pins_intact",
    source="issue 5 reproduce; DESIGN.md §6 Tier 1",
    description="Every pin of the run can be restored as recorded: commit, config (config_hash), src/features.py (feature_pipeline_hash), dataset bytes (content hash), feature columns, standards.",
)
def reproduce_pins_intact(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    broken = [p for p in facts["pins"] if not p["ok"]]
    if not broken:
        return Decision.allow("reproduce.pins_intact", f"{len(facts['pins'])} pins restored")
    return Decision.deny(
        "reproduce.pins_intact",
        "the run cannot be reproduced from its pins: " + "; ".join(f"{p['pin']}: {p['reason']}" for p in broken),
        "the run is recorded as not reproduced; restore what changed (the operator checks datasets with `mlgate data verify`) or promote another run",
    )
