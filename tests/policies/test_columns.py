"""Rule cases: columns the standards name against the dataset (data.columns_present,
data.no_label_or_time_look_alike, data.column_names, fairness.protected_attributes_present), and the realised split
fractions (split.realised_fractions)."""

from __future__ import annotations

from typing import Any

from policies.decision import decide_one
from policies.registry import load_all
from tests.policies.cases import BASE_POLICY, BASE_STANDARDS, RuleCase, config
from tools.columns import column_report

POLICY = {**BASE_POLICY, "split": {"fraction_tolerance": 0.05}, "fairness": {"allow_no_protected_attributes": False}}
CFG = config(policy=POLICY)
ALLOW_NONE = config(policy=POLICY, standards={**BASE_STANDARDS, "fairness": {"allow_no_protected_attributes": True}})
NONE_NAMED = config(policy=POLICY, standards={**BASE_STANDARDS, "protected_attributes": []})  # `mlgate standards set --protected`
WIDE = config(policy=POLICY, standards={**BASE_STANDARDS, "split": {"fraction_tolerance": 0.2}})
FULL = ["customer_id", "email", "application_date", "gender", "income", "default"]


def facts(columns: list[str] = FULL, strategy: str = "temporal_split", split: Any = None, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    config = {"split": {"strategy": strategy}, "features": {"exclude": list(exclude)}}
    return {"columns": column_report(columns, BASE_STANDARDS), "dataset_columns": columns, "config": config, "split": split}


def split(test: float, expected: float = 0.2) -> dict[str, Any]:
    return {"fractions": {"train": 0.6, "validation": 0.2, "test": test}, "expected": {"test": expected}}


WITHOUT_LABEL = [c for c in FULL if c != "default"]
WITHOUT_TIME = [c for c in FULL if c != "application_date"]
WITHOUT_PROTECTED = [c for c in FULL if c != "gender"]
LABEL_COPY = [*FULL, "Default"]  # the label again, in another case
TIME_COPY = [*FULL, "ａｐｐｌｉｃａｔｉｏｎ_ｄａｔｅ"]  # the time column again, full-width
LABEL_SPELLED = [*WITHOUT_LABEL, "DEFAULT "]  # only a look-alike of the label
UNICODE_COPIES = ("ｄefault", "de\u200bfault")  # the label again, one letter full-width; with a zero-width space
CASES = [
    RuleCase("data.columns_present", "allow", facts(), CFG, "all_there"),
    RuleCase("data.columns_present", "deny", facts(WITHOUT_LABEL), CFG, "no_label"),
    RuleCase("data.columns_present", "deny", facts(WITHOUT_TIME), CFG, "no_time_column_for_temporal"),
    RuleCase("data.columns_present", "allow", facts(WITHOUT_TIME, "stratified_kfold"), CFG, "no_time_column_kfold"),
    RuleCase("data.columns_present", "deny", facts(LABEL_SPELLED), CFG, "label_only_in_another_spelling"),
    RuleCase("data.no_label_or_time_look_alike", "allow", facts(), CFG, "exact_names_only"),
    RuleCase("data.no_label_or_time_look_alike", "deny", facts(LABEL_COPY), CFG, "label_copy_in_another_case"),
    RuleCase("data.no_label_or_time_look_alike", "deny", facts(TIME_COPY), CFG, "time_column_copy_full_width"),
    RuleCase("data.no_label_or_time_look_alike", "allow", facts(LABEL_COPY, exclude=("Default",)), CFG, "copy_named_in_features_exclude"),
    RuleCase("data.no_label_or_time_look_alike", "allow", facts(LABEL_SPELLED), CFG, "no_exact_label_left_to_columns_present"),
    RuleCase("data.no_label_or_time_look_alike", "allow", facts([*FULL, *UNICODE_COPIES], exclude=UNICODE_COPIES), CFG, "unicode_copies_named_in_features_exclude"),
    RuleCase("data.no_label_or_time_look_alike", "deny", facts([*FULL, *UNICODE_COPIES], exclude=("ｄefault",)), CFG, "one_entry_names_one_copy_not_both"),
    RuleCase("data.no_label_or_time_look_alike", "deny", facts([*FULL, "ｄefault"], exclude=("default\u200b", "Default")), CFG, "an_entry_of_the_same_key_but_another_spelling"),
    RuleCase("data.column_names", "allow", facts([*FULL, *UNICODE_COPIES, "Default (12m)"]), CFG, "zero_width_full_width_and_punctuation"),
    RuleCase("data.column_names", "deny", facts([*FULL, "income\nnote"]), CFG, "newline_imported_before_the_rule"),
    RuleCase("data.column_names", "deny", facts([*FULL, "\u202edefault"]), CFG, "bidi_override"),
    RuleCase("fairness.protected_attributes_present", "allow", facts(), CFG, "one_of_two"),
    RuleCase("fairness.protected_attributes_present", "deny", facts(WITHOUT_PROTECTED), CFG, "none_present"),
    RuleCase("fairness.protected_attributes_present", "allow", facts(WITHOUT_PROTECTED), ALLOW_NONE, "none_present_allowed"),
    RuleCase("fairness.protected_attributes_present", "allow", {**facts(WITHOUT_PROTECTED), "columns": column_report(WITHOUT_PROTECTED, NONE_NAMED["standards"])}, NONE_NAMED, "the_standards_name_none"),
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


def test_a_missing_label_or_time_column_names_the_look_alike_the_dataset_has_instead() -> None:
    denied = decide_one(load_all()["data.columns_present"], facts([c for c in LABEL_SPELLED if c != "application_date"] + ["Application_Date"]), CFG)
    assert "label column 'default' (the dataset has 'DEFAULT '" in denied.reason and "time column 'application_date' (split.strategy is temporal_split; the dataset has 'Application_Date'" in denied.reason
    assert "'DEFAULT ' renamed to 'default' and 'Application_Date' renamed to 'application_date'" in denied.remediation and "mlgate standards set" in denied.remediation
    plain = decide_one(load_all()["data.columns_present"], facts(WITHOUT_LABEL), CFG)
    assert "another spelling" not in plain.reason and "renamed" not in plain.remediation


def test_a_copy_of_the_label_is_named_with_both_ways_out() -> None:
    denied = decide_one(load_all()["data.no_label_or_time_look_alike"], facts([*LABEL_COPY, "default\u200b"], exclude=("Default",)), CFG)
    # repr shows the zero-width space, so the operator can find the column
    assert "'default\\u200b' beside the label column 'default'" in denied.reason and "'Default'" not in denied.reason
    assert "drop or rename" in denied.remediation and "features.exclude" in denied.remediation
    # the exact spelling to name, in JSON escapes: `\u200b` can be typed, an invisible character cannot
    assert '["default\\u200b"]' in denied.remediation and "never normalised" in denied.remediation


def test_a_refused_column_name_is_shown_escaped_with_its_position() -> None:
    denied = decide_one(load_all()["data.column_names"], facts([*FULL, "\u202edefault"]), CFG)
    assert 'column 7, "\\u202edefault": it holds U+202E' in denied.reason and "mlgate data add" in denied.remediation
    assert all(ch.isprintable() for ch in denied.reason)
