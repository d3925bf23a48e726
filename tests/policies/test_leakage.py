"""Rule cases: leakage.forbidden_columns, leakage.single_feature_proxy, leakage.not_flagged."""

from __future__ import annotations

from typing import Any

from policies.leakage import leakage_settings
from tests.policies.cases import BASE_POLICY, BASE_STANDARDS, RuleCase, config

LEAKAGE = {"action": "flag", "max_single_feature_auc": 0.95, "implausible_metrics": {"roc_auc": 0.99}, "forbidden_columns": []}
FLAG = config(policy={**BASE_POLICY, "leakage": LEAKAGE}, standards={**BASE_STANDARDS, "leakage": {"forbidden_columns": ["recoveries"]}})
DENY = config(policy={**BASE_POLICY, "leakage": {**LEAKAGE, "action": "deny"}})


def run(features: list[str], suspicious: list[str] | None = None) -> dict[str, Any]:
    section = None if suspicious is None else {"suspicious_columns": suspicious, "single_feature_auc": {c: 0.999 for c in suspicious}, "max_single_feature_auc": 0.95}
    return {"feature_columns": features, "leakage": section}


def promoted(tag: str | None) -> dict[str, Any]:
    return {"run": {"run_id": "a" * 32, "tags": {} if tag is None else {"mlgate.leakage": tag}}}


CASES = [
    RuleCase("leakage.forbidden_columns", "allow", run(["income"]), FLAG, "clean"),
    RuleCase("leakage.forbidden_columns", "deny", run(["income", "recoveries"]), FLAG, "forbidden_feature"),
    RuleCase("leakage.single_feature_proxy", "allow", run(["income"], []), DENY, "nothing_suspicious"),
    RuleCase("leakage.single_feature_proxy", "allow", run(["int_rate"], ["int_rate"]), FLAG, "flag_mode_trains_flagged"),
    RuleCase("leakage.single_feature_proxy", "deny", run(["int_rate"], ["int_rate"]), DENY, "deny_mode"),
    RuleCase("leakage.single_feature_proxy", "allow", run(["income"]), DENY, "not_scanned"),
    RuleCase("leakage.not_flagged", "allow", promoted("clean"), FLAG, "clean_run"),
    RuleCase("leakage.not_flagged", "allow", promoted(None), FLAG, "untagged_run"),
    RuleCase("leakage.not_flagged", "deny", promoted("flagged"), FLAG, "flagged_run"),
]


def test_standards_override_the_policy_defaults_of_the_leakage_gate() -> None:
    settings = leakage_settings(FLAG)
    assert settings["forbidden_columns"] == ["recoveries"] and settings["action"] == "flag" and settings["max_single_feature_auc"] == 0.95
