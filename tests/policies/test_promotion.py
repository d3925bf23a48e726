"""Promotion, reproduction and rollback rules (policies/promotion.py): an allow and a deny case
each, the receipt built from the same gates, and the pure helpers."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import pytest

from policies import Principal
from policies.decision import decide_one
from policies.promotion import GATES, metric_differences, receipt, receipt_passed, reproduction_passes, worst_difference
from policies.registry import load_all
from tests.policies.cases import BASE_POLICY, RuleCase, config

C = "a" * 40
RUN_ID, REPRO_ID = "1" * 32, "2" * 32
CFG = config(policy={**BASE_POLICY, "promotion": {"reproduction_tolerance": 0.001, "seeds": 3}})
AGENT, HUMAN = Principal("agent-1", "agent"), Principal("alice", "human")
RUN_CONFIG = {
    "data": {"target": "default", "positive_class": 1},
    "split": {"strategy": "temporal_split", "test_size": 0.2},
    "features": {"exclude": [], "use_protected_attributes": False},
    "evaluation": {"primary_metric": "roc_auc"},
}
PASS = {
    "min_primary_metric": {"gate": "min_primary_metric", "status": "PASS", "observed": 0.82, "threshold": 0.7, "reason": "ok"},
    "min_lift_over_baseline": {"gate": "min_lift_over_baseline", "status": "PASS", "observed": 0.01, "threshold": 0.0, "reason": "ok"},
    "champion_tolerance": {"gate": "champion_tolerance", "status": "SKIPPED", "observed": None, "threshold": 0.005, "reason": "no champion yet"},
    "max_seed_variance": {"gate": "max_seed_variance", "status": "PASS", "observed": 0.0001, "threshold": 0.005, "reason": "ok"},
    "calibration_vs_prior": {"gate": "calibration_vs_prior", "status": "PASS", "observed": {"improvement": 0.03, "lower_bound": 0.01, "confidence": 0.95}, "threshold": 0.0, "reason": "ok"},
}


def facts(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "principal": HUMAN,
        "alias": "champion",
        "run": {"run_id": RUN_ID, "status": "FINISHED", "params": {"git_commit": C, "git_dirty": "false", "standards_sha256": "0" * 64}, "metrics": {"test_roc_auc": 0.82}, "tags": {}},
        "model": "demo-bank-credit-default",
        "model_logged": True,
        "commit_known": True,
        "pr_reach": [{"pr": "local#1", "branch": "agent/x", "head": C}],
        "run_files": {"recorded": True, "mismatched": []},
        "dataset": {"recorded": "d" * 64, "verified": True, "reason": "verified"},
        "run_config": deepcopy(RUN_CONFIG),
        "metric_gates": deepcopy(PASS),
        "reproduction": {"recorded": "true", "run_id": REPRO_ID, "status": "FINISHED", "pins_mismatched": [], "differences": {"test_roc_auc": 0.0}},
        "seed_runs": {"seeds": [42, 43, 44], "values": [0.82, 0.81, 0.83], "problems": []},
        "approval": {"id": "apr-0123456789ab", "status": "approved", "decided_by": "bob"},
        "run_version": None,
        "alias_version": None,
        "alias_recorded": None,
    }
    base.update(changes)
    return base


def with_params(**params: Any) -> dict[str, Any]:
    run = facts()["run"]
    return facts(run={**run, "params": {**run["params"], **params}})


def metric_gate(name: str, status: str) -> dict[str, Any]:
    return facts(metric_gates={**deepcopy(PASS), name: {**PASS[name], "status": status}})


def moved(path: str, value: Any) -> dict[str, Any]:
    section, key = path.split(".")
    document = deepcopy(RUN_CONFIG)
    document[section][key] = value
    return facts(run_config=document)


def reproduction(**changes: Any) -> dict[str, Any]:
    return facts(reproduction={**facts()["reproduction"], **changes})


ROLLBACK = {"principal": HUMAN, "model": "demo-bank-credit-default", "alias": "champion", "stack": ["1", "2"], "alias_version": "2"}
PIN_OK = {"pin": "dataset", "ok": True, "expected": "d" * 64, "observed": "d" * 64, "reason": "restored"}
PIN_BROKEN = {**PIN_OK, "ok": False, "observed": None, "reason": "the dataset's bytes no longer hash to its name"}

CASES = [
    RuleCase("promotion.run_succeeded", "allow", facts(), CFG, "finished"),
    RuleCase("promotion.run_succeeded", "deny", facts(run={**facts()["run"], "status": "FAILED"}), CFG, "failed"),
    RuleCase("promotion.run_clean", "allow", facts(), CFG, "clean"),
    RuleCase("promotion.run_clean", "deny", with_params(git_dirty="true"), CFG, "dirty"),
    RuleCase("promotion.run_clean", "deny", facts(run_files={"recorded": True, "mismatched": ["src/features.py"]}), CFG, "hidden_change_in_the_bytes_used"),
    RuleCase("promotion.run_clean", "deny", facts(run_files={"recorded": False, "mismatched": []}), CFG, "no_recorded_file_hashes"),
    RuleCase("promotion.run_clean", "deny", with_params(git_commit="HEAD"), CFG, "no_commit_id"),
    RuleCase("promotion.model_logged", "allow", facts(), CFG, "logged"),
    RuleCase("promotion.model_logged", "deny", facts(model_logged=False), CFG, "missing"),
    RuleCase("promotion.commit_on_pr_branch", "allow", facts(), CFG, "on_pr_branch"),
    RuleCase("promotion.commit_on_pr_branch", "deny", facts(pr_reach=[]), CFG, "no_pr"),
    RuleCase("promotion.commit_on_pr_branch", "deny", facts(commit_known=False), CFG, "unknown_commit"),
    RuleCase("promotion.dataset_verified", "allow", facts(), CFG, "verified"),
    RuleCase("promotion.dataset_verified", "deny", facts(dataset={"recorded": "d" * 64, "verified": False, "reason": "bytes changed"}), CFG, "tampered"),
    RuleCase("promotion.protected_fields", "allow", facts(), CFG, "standards"),
    RuleCase("promotion.protected_fields", "deny", moved("split.test_size", 0.3), CFG, "moved"),
    RuleCase("promotion.protected_fields", "deny", moved("data.positive_class", "1"), CFG, "type_changed"),
    RuleCase("promotion.protected_fields", "deny", facts(run_config=None), CFG, "not_rebuilt"),
    RuleCase("promotion.standards_current", "allow", facts(), CFG, "same"),
    RuleCase("promotion.standards_current", "deny", with_params(standards_sha256="f" * 64), CFG, "changed"),
    RuleCase("promotion.min_primary_metric", "allow", facts(), CFG, "above"),
    RuleCase("promotion.min_primary_metric", "deny", metric_gate("min_primary_metric", "FAIL"), CFG, "below"),
    RuleCase("promotion.min_primary_metric", "deny", facts(metric_gates={}), CFG, "not_configured"),
    RuleCase("promotion.min_lift_over_baseline", "allow", facts(), CFG, "lift"),
    RuleCase("promotion.min_lift_over_baseline", "deny", metric_gate("min_lift_over_baseline", "FAIL"), CFG, "below_baseline"),
    RuleCase("promotion.champion_tolerance", "allow", facts(), CFG, "no_champion"),
    RuleCase("promotion.champion_tolerance", "deny", metric_gate("champion_tolerance", "FAIL"), CFG, "trails"),
    RuleCase("promotion.calibration_vs_prior", "allow", facts(), CFG, "better_than_prior"),
    RuleCase("promotion.calibration_vs_prior", "deny", metric_gate("calibration_vs_prior", "FAIL"), CFG, "worse_than_prior"),
    RuleCase("promotion.calibration_vs_prior", "deny", facts(metric_gates={k: v for k, v in PASS.items() if k != "calibration_vs_prior"}), CFG, "not_measured"),
    RuleCase("promotion.reproduced", "allow", facts(), CFG, "reproduced"),
    RuleCase("promotion.reproduced", "allow", facts(alias="candidate", reproduction=None), CFG, "candidate_skips"),
    RuleCase("promotion.reproduced", "deny", facts(reproduction=None), CFG, "none"),
    RuleCase("promotion.reproduced", "deny", reproduction(recorded="false"), CFG, "recorded_false"),
    RuleCase("promotion.reproduced", "deny", reproduction(differences={"test_roc_auc": 0.01}), CFG, "out_of_tolerance"),
    RuleCase("promotion.reproduced", "deny", reproduction(pins_mismatched=["dataset_content_hash"]), CFG, "other_pins"),
    RuleCase("promotion.reproduced", "deny", reproduction(status="FAILED"), CFG, "failed_rerun"),
    RuleCase("promotion.max_seed_variance", "allow", facts(), CFG, "stable"),
    RuleCase("promotion.max_seed_variance", "allow", facts(alias="candidate", seed_runs={"seeds": [42], "values": [0.8], "problems": []}), CFG, "candidate_skips"),
    RuleCase("promotion.max_seed_variance", "deny", metric_gate("max_seed_variance", "FAIL"), CFG, "unstable"),
    RuleCase("promotion.max_seed_variance", "deny", metric_gate("max_seed_variance", "SKIPPED"), CFG, "not_measured"),
    RuleCase("promotion.max_seed_variance", "deny", facts(seed_runs={"seeds": [42, 43], "values": [0.8, 0.8], "problems": []}), CFG, "too_few_seeds"),
    RuleCase("promotion.human_approval", "allow", facts(), CFG, "approved"),
    RuleCase("promotion.human_approval", "allow", facts(approval=None, run_version="3", alias_version="3", alias_recorded="3"), CFG, "already_champion"),
    RuleCase("promotion.human_approval", "deny", facts(approval=None, run_version="3", alias_version="3", alias_recorded="2"), CFG, "alias_moved_outside_mlgate"),
    RuleCase("promotion.human_approval", "deny", facts(approval=None), CFG, "missing"),
    RuleCase("promotion.human_approval", "deny", facts(approval={"id": "apr-0123456789ab", "status": "pending", "decided_by": None}), CFG, "pending"),
    RuleCase("role.agents_cannot_set_champion", "allow", facts(principal=AGENT, alias="candidate"), CFG, "agent_candidate"),
    RuleCase("role.agents_cannot_set_champion", "allow", facts(), CFG, "human_champion"),
    RuleCase("role.agents_cannot_set_champion", "deny", facts(principal=AGENT), CFG, "agent_champion"),
    RuleCase("role.agents_cannot_set_champion", "deny", facts(alias="production"), CFG, "unknown_alias"),
    RuleCase("role.agents_cannot_rollback", "allow", ROLLBACK, CFG, "human"),
    RuleCase("role.agents_cannot_rollback", "deny", {**ROLLBACK, "principal": AGENT}, CFG, "agent"),
    RuleCase("promotion.rollback_available", "allow", ROLLBACK, CFG, "previous"),
    RuleCase("promotion.rollback_available", "deny", {**ROLLBACK, "stack": ["2"]}, CFG, "no_previous"),
    RuleCase("promotion.rollback_available", "deny", {**ROLLBACK, "alias_version": "5"}, CFG, "moved_outside"),
    RuleCase("promotion.rollback_available", "deny", {**ROLLBACK, "stack": [], "alias_version": None}, CFG, "never_set"),
    RuleCase("reproduce.run_finished", "allow", facts(), CFG, "finished"),
    RuleCase("reproduce.run_finished", "deny", facts(run={**facts()["run"], "status": "KILLED"}), CFG, "killed"),
    RuleCase("reproduce.pins_intact", "allow", {"pins": [PIN_OK]}, CFG, "restored"),
    RuleCase("reproduce.pins_intact", "deny", {"pins": [PIN_OK, PIN_BROKEN]}, CFG, "tampered"),
]


def test_a_receipt_lists_every_gate_in_order_and_passes_when_none_fails() -> None:
    entries = receipt(facts(), CFG)
    assert [e["gate"] for e in entries] == [rule_id.split(".", 1)[1] for rule_id, *_ in GATES]
    assert receipt_passed(entries)


@pytest.mark.parametrize("case", [c for c in CASES if c.rule_id.startswith("promotion.") and c.rule_id != "promotion.rollback_available"], ids=lambda c: c.id)
def test_the_receipt_fails_exactly_where_the_rule_denies(case: RuleCase) -> None:
    gate = case.rule_id.split(".", 1)[1]
    entry = next(e for e in receipt(case.facts, case.config) if e["gate"] == gate)
    assert (entry["status"] == "FAIL") is (case.expect == "deny")
    assert (entry["status"] == "FAIL") is (not decide_one(load_all()[case.rule_id], case.facts, case.config).allowed)


def test_a_gate_that_raises_fails_the_receipt() -> None:
    entries = receipt(facts(dataset=None), CFG)
    broken = next(e for e in entries if e["gate"] == "dataset_verified")
    assert broken["status"] == "FAIL" and "could not be checked" in broken["reason"]
    assert not receipt_passed(entries)


def test_candidate_skips_the_champion_gates_and_shows_what_it_observed() -> None:
    entries = {e["gate"]: e for e in receipt(facts(alias="candidate", approval=None), CFG)}
    assert {entries[g]["status"] for g in ("reproduced", "max_seed_variance", "human_approval")} == {"SKIPPED"}
    assert entries["reproduced"]["observed"] == {"run_id": REPRO_ID, "max_difference": 0.0}


def test_metric_differences_cover_the_original_test_metrics_only() -> None:
    original = {"test_roc_auc": 0.8, "test_f1": 0.5, "cv_roc_auc_mean": 0.7, "baseline_class_prior_roc_auc": 0.5}
    reproduced = {"test_roc_auc": 0.8004, "cv_roc_auc_mean": 0.1}
    differences = metric_differences(original, reproduced)
    assert set(differences) == {"test_roc_auc", "test_f1"} and differences["test_f1"] is None
    assert differences["test_roc_auc"] == pytest.approx(0.0004)


@pytest.mark.parametrize(
    ("differences", "passes"),
    [({"test_roc_auc": 0.0}, True), ({"test_roc_auc": 0.001}, True), ({"test_roc_auc": 0.0011}, False), ({"test_roc_auc": None}, False), ({}, False)],
)
def test_reproduction_passes_only_when_every_metric_is_within_tolerance(differences: dict[str, Any], passes: bool) -> None:
    assert reproduction_passes(differences, 0.001) is passes


def test_worst_difference_is_unknown_when_a_metric_was_not_reproduced() -> None:
    assert worst_difference({"a": 0.1, "b": 0.3}) == 0.3
    assert worst_difference({"a": 0.1, "b": None}) is None


def test_a_human_approval_denial_names_the_approval_when_there_is_one_and_how_one_is_opened_when_not() -> None:
    rule_ = load_all()["promotion.human_approval"]
    pending = decide_one(rule_, facts(approval={"id": "apr-0123456789ab", "status": "pending", "decided_by": None}), CFG)
    assert not pending.allowed and "apr-0123456789ab" in pending.reason and "is pending" in pending.reason, pending.reason
    missing = decide_one(rule_, facts(approval=None), CFG)
    assert not missing.allowed and "no approval" in missing.reason, missing.reason
    assert "in this denial" not in missing.remediation and "opens" in missing.remediation, missing.remediation


def test_rolling_back_an_alias_never_set_says_so_and_names_the_command_that_sets_it() -> None:
    decision = load_all()["promotion.rollback_available"]({**ROLLBACK, "stack": [], "alias_version": None}, CFG)
    assert not decision.allowed
    assert decision.reason.endswith("is not set: there is nothing to roll back") and "None" not in decision.reason
    assert f"mlgate promote RUN --alias {ROLLBACK['alias']}" in decision.remediation
