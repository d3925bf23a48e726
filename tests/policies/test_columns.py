"""Rule cases: columns the standards name against the dataset (data.columns_present,
fairness.protected_attributes_present), and the realised split fractions (split.realised_fractions)."""

from __future__ import annotations

from typing import Any

from tests.policies.cases import BASE_POLICY, BASE_STANDARDS, RuleCase, config
from tools.columns import column_report

POLICY = {**BASE_POLICY, "split": {"fraction_tolerance": 0.05}, "fairness": {"allow_no_protected_attributes": False}}
CFG = config(policy=POLICY)
ALLOW_NONE = config(policy=POLICY, standards={**BASE_STANDARDS, "fairness": {"allow_no_protected_attributes": True}})
WIDE = config(policy=POLICY, standards={**BASE_STANDARDS, "split": {"fraction_tolerance": 0.2}})
FULL = ["customer_id", "email", "application_date", "gender", "income", "default"]


def facts(columns: list[str] = FULL, strategy: str = "temporal_split", split: Any = None) -> dict[str, Any]:
    return {"columns": column_report(columns, BASE_STANDARDS), "config": {"split": {"strategy": strategy}}, "split": split}


def split(test: float, expected: float = 0.2) -> dict[str, Any]:
    return {"fractions": {"train": 0.6, "validation": 0.2, "test": test}, "expected": {"test": expected}}


WITHOUT_LABEL = [c for c in FULL if c != "default"]
WITHOUT_TIME = [c for c in FULL if c != "application_date"]
WITHOUT_PROTECTED = [c for c in FULL if c != "gender"]
CASES = [
    RuleCase("data.columns_present", "allow", facts(), CFG, "all_there"),
    RuleCase("data.columns_present", "deny", facts(WITHOUT_LABEL), CFG, "no_label"),
    RuleCase("data.columns_present", "deny", facts(WITHOUT_TIME), CFG, "no_time_column_for_temporal"),
    RuleCase("data.columns_present", "allow", facts(WITHOUT_TIME, "stratified_kfold"), CFG, "no_time_column_kfold"),
    RuleCase("fairness.protected_attributes_present", "allow", facts(), CFG, "one_of_two"),
    RuleCase("fairness.protected_attributes_present", "deny", facts(WITHOUT_PROTECTED), CFG, "none_present"),
    RuleCase("fairness.protected_attributes_present", "allow", facts(WITHOUT_PROTECTED), ALLOW_NONE, "none_present_allowed"),
    RuleCase("split.realised_fractions", "allow", facts(split=split(0.21)), CFG, "within_tolerance"),
    RuleCase("split.realised_fractions", "deny", facts(split=split(0.36)), CFG, "monthly_36_percent"),
    RuleCase("split.realised_fractions", "allow", facts(split=split(0.36)), WIDE, "standards_widen_tolerance"),
    RuleCase("split.realised_fractions", "allow", facts(split=None), CFG, "no_split_made"),
]


def test_absent_pii_and_protected_columns_are_reported_never_dropped() -> None:
    report = column_report(WITHOUT_PROTECTED, BASE_STANDARDS)
    assert report["protected_attributes"] == {"present": [], "absent": ["gender", "age_band"]}
    assert report["pii_columns"]["absent"] == ["full_name"]
    assert any("full_name" in w for w in report["warnings"]) and any("age_band" in w for w in report["warnings"])
