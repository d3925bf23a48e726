"""Checks on generated messy lending data: text labels with several positive values, month strings,
realised split fractions, named columns the dataset lacks, label proxies, binned fairness slices."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from policies.config_change import protected_changes
from tests.messy_data import BAD_STATUSES, LEAK_COLUMNS, STANDARDS, bad_labels, lending_frame
from tests.policies.cases import BASE_POLICY
from tools.experiment_schema import validate_experiment
from tools.fairness import bin_values, default_edges, fairness_slices
from tools.leakage import implausible_metrics, pre_training, training_rows
from tools.run_evidence import before_training, expected_fractions
from tools.labels import labels_from_target
from tools.splits import stratified_kfold, temporal_split, time_values

POLICY = {**BASE_POLICY, "split": {"fraction_tolerance": 0.05}, "leakage": {"action": "flag", "max_single_feature_auc": 0.95, "forbidden_columns": []}}
PROTECTED = {"data.positive_class": list(BAD_STATUSES), "split.test_size": 0.2}


def run_config(**split: Any) -> dict[str, Any]:
    return {
        "experiment": {"name": "lending", "seed": 3},
        "data": {"dataset": None, "target": "loan_status", "positive_class": list(BAD_STATUSES)},
        "split": {"strategy": "temporal_split", "test_size": 0.2, "validation_size": 0.2, **split},
        "model": {"type": "logistic_regression", "params": {}},
        "features": {"exclude": [], "use_protected_attributes": False},
        "evaluation": {"primary_metric": "roc_auc", "metrics": ["roc_auc"], "bootstrap_samples": 0},
    }


def policy_config(**standards: Any) -> dict[str, Any]:
    return {"standards": {**STANDARDS, "protected_fields": PROTECTED, **standards}, "policy": POLICY}


def features_of(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("loan_status", "issue_d", "member_id", "borrower_name", "email", "age", "gender")]


# --- item 3: several positive values ------------------------------------------------------


def test_any_of_several_text_statuses_counts_as_positive() -> None:
    frame = lending_frame(200)
    labels = labels_from_target(frame["loan_status"], list(BAD_STATUSES))
    assert labels.tolist() == bad_labels(frame).tolist() and 0 < labels.mean() < 1
    assert labels_from_target(pd.Series([" Charged Off", "Current", 1]), ["Charged Off", "1"]).tolist() == [1, 0, 1]


def test_the_schema_takes_a_list_of_positive_values_but_not_an_empty_or_repeating_one() -> None:
    assert validate_experiment(run_config())[1] == []
    for bad in ([], ["Late", "Late"]):
        document = run_config()
        document["data"]["positive_class"] = bad
        config, errors = validate_experiment(document)
        assert config is None and any("positive_class" in e for e in errors)


def test_changing_the_list_of_positive_values_is_a_protected_change() -> None:
    before = run_config()
    after = run_config()
    after["data"]["positive_class"] = ["Charged Off"]
    assert [c["path"] for c in protected_changes(before, after, PROTECTED)] == ["data.positive_class"]
    assert protected_changes(before, run_config(), PROTECTED) == []


# --- item 5: month strings and realised fractions -------------------------------------------


def test_month_strings_parse_to_the_first_of_their_month() -> None:
    times = time_values(pd.DataFrame({"issue_d": ["Mar-2018", "Dec-2017", " Jan-2019"]}), "issue_d")
    assert [t.strftime("%Y-%m-%d") for t in times] == ["2018-03-01", "2017-12-01", "2019-01-01"]


def test_every_split_reports_the_fractions_it_really_made() -> None:
    frame = lending_frame(400)
    labels = bad_labels(frame)
    temporal = temporal_split(frame, time_column="issue_d", windows={"test_size": 0.2, "validation_size": 0.2}, labels=labels)
    fractions = temporal.description["fractions"]
    assert fractions["test"] == round(temporal.test.size / 400, 6) and sum(fractions.values()) == pytest.approx(1.0)
    kfold = stratified_kfold(labels, n_splits=3, test_size=0.2, seed=1).description["fractions"]
    assert kfold["test"] == pytest.approx(0.2, abs=0.005) and kfold["validation"] == pytest.approx(0.8 / 3, abs=0.005)


def test_a_monthly_cut_moves_to_the_nearer_month_boundary() -> None:
    # 10 months: 10, 10, ..., 10, 30 rows. A 20% test cut (row 96 of 120) falls inside the last
    # month; its start (row 90) is nearer than "everything after", so the test window is 25%.
    months = np.repeat([f"{m}-2018" for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct")], [10] * 9 + [30])
    plan = temporal_split(pd.DataFrame({"issue_d": months}), time_column="issue_d", windows={"test_size": 0.2, "validation_size": 0.1})
    assert plan.description["fractions"]["test"] == 0.25
    # An even cut nearer the end of its group moves the cut forward instead of backward.
    even = np.repeat(np.arange(5), [40, 40, 40, 40, 40])
    later = temporal_split(pd.DataFrame({"t": even}), time_column="t", windows={"test_size": 0.18, "validation_size": 0.18})
    assert later.description["fractions"] == {"train": 0.6, "validation": 0.2, "test": 0.2}


def test_coarse_months_give_a_test_window_off_the_protected_fraction() -> None:
    facts = before_training(lending_frame(400, months=12), run_config(), features_of(lending_frame(400)), policy_config(), {})
    split = facts["split"]
    assert split["expected"] == {"test": 0.2} and split["tolerance"] == 0.05
    assert abs(split["fractions"]["test"] - 0.2) > 0.05 and split["within_tolerance"] is False


def test_an_approved_test_size_is_the_expected_one_and_bounds_leave_it_unchecked() -> None:
    standards = {"protected_fields": PROTECTED}
    assert expected_fractions(run_config(test_size=0.3), standards, {"split.test_size": "0.3"}) == {"test": 0.3}
    assert expected_fractions(run_config(test_size=0.3), standards, {}) == {"test": 0.2}
    bounds = run_config()
    bounds["split"] = {"strategy": "temporal_split", "train_end": "2017-09-30", "validation_end": "2017-10-31"}
    assert expected_fractions(bounds, standards, {"split.test_size": "<absent>"}) == {}


# --- item 4: named columns the dataset lacks ------------------------------------------------


def test_a_missing_label_column_is_reported_and_nothing_is_split() -> None:
    frame = lending_frame(200).drop(columns=["loan_status", "gender"])
    facts = before_training(frame, run_config(), features_of(frame), policy_config(pii_columns=["member_id", "ssn"]), {})
    assert facts["columns"]["label"] == {"name": "loan_status", "present": False, "look_alikes": []}
    assert facts["columns"]["pii_columns"]["absent"] == ["ssn"] and facts["columns"]["protected_attributes"] == {"present": ["age"], "absent": ["gender"]}
    assert facts["split"] is None and facts["leakage"] is None


# --- item 7: leakage on training folds ------------------------------------------------------


def test_label_proxies_are_flagged_and_free_text_or_ids_are_not() -> None:
    frame = lending_frame(400, leaks=True)
    labels = bad_labels(frame)
    plan = temporal_split(frame, time_column="issue_d", windows={"test_size": 0.2, "validation_size": 0.2}, labels=labels)
    section = pre_training(frame, labels, plan, features_of(frame) + ["member_id", "borrower_name"], {"max_single_feature_auc": 0.95, "forbidden_columns": ["recoveries"]}, seed=3)
    assert set(section["suspicious_columns"]) == {"int_rate_final", "status_note"}
    assert section["forbidden_features"] == ["recoveries"]
    assert section["single_feature_auc"]["int_rate_final"] > 0.99 and section["checked_on"]["rows"] == plan.folds[0].train.size
    assert all(section["single_feature_auc"].get(c, 0.0) < 0.8 for c in ("member_id", "borrower_name", "desc", "grade"))
    assert set(LEAK_COLUMNS) >= set(section["suspicious_columns"])


def test_the_leakage_scan_never_reads_test_or_validation_rows() -> None:
    frame = lending_frame(400)
    labels = bad_labels(frame)
    plan = temporal_split(frame, time_column="issue_d", windows={"test_size": 0.2, "validation_size": 0.2}, labels=labels)
    unseen = np.setdiff1d(np.arange(400), training_rows(plan))
    frame["peek"] = 0.0
    frame.loc[unseen, "peek"] = labels[unseen] * 100.0  # a perfect proxy, but only where the scan must not look
    section = pre_training(frame, labels, plan, ["peek", "income"], {"max_single_feature_auc": 0.95}, seed=0)
    assert section["suspicious_columns"] == [] and section["single_feature_auc"]["peek"] == 0.5


def test_implausible_metrics_are_those_beyond_their_bounds_in_either_direction() -> None:
    found = implausible_metrics({"roc_auc": 0.99999, "pr_auc": 0.7, "log_loss": 0.001}, {"roc_auc": 0.99, "pr_auc": 0.99, "log_loss": 0.01})
    assert [f["metric"] for f in found] == ["log_loss", "roc_auc"]


# --- item 9: binned fairness slices ---------------------------------------------------------


def test_numeric_ages_are_binned_and_small_slices_carry_no_metrics() -> None:
    frame = lending_frame(400)
    labels = bad_labels(frame)
    rows = np.arange(200, 400)
    scores = np.clip(labels[rows] * 0.4 + np.random.default_rng(1).random(200) * 0.6, 0, 1)
    slices = fairness_slices(frame, rows, labels[rows], scores, ["age", "gender", "absent_attr"], {"min_slice_size": 20, "default_bins": 4, "max_levels_unbinned": 10})
    assert set(slices) == {"age", "gender"}
    age = slices["age"]
    assert len(age["bins"]) == 3 and len(age["slices"]) <= 5 and "<missing>" in age["slices"]
    assert age["slices"]["<missing>"]["status"] == "insufficient" and "roc_auc" not in age["slices"]["<missing>"]
    assert slices["gender"]["slices"]["X"] == {"count": int((frame["gender"].iloc[rows] == "X").sum()), "status": "insufficient"}
    measured = [s for s in age["slices"].values() if s["status"] == "ok"]
    assert max(s["selection_rate_ratio"] for s in measured) == 1.0 and age["slices"][age["most_favoured"]]["selection_rate_ratio"] == 1.0
    assert age["selection_rate_ratio_min_max"] == pytest.approx(min(s["selection_rate_ratio"] for s in measured))
    json.dumps(slices)


def test_bins_from_the_standards_win_over_quantiles() -> None:
    ages = pd.Series([19, 24, 25, 40, 64, 65, None])
    assert bin_values(ages, [25, 65]).tolist() == ["< 25", "< 25", "[25, 65)", "[25, 65)", "[25, 65)", ">= 65", "<missing>"]
    assert default_edges(pd.Series(range(100)), 4) == [25.0, 50.0, 74.0]
    frame = pd.DataFrame({"age": [20, 30, 40, 50, 60, 70] * 10})
    slices = fairness_slices(frame, np.arange(60), np.tile([0, 1], 30), np.full(60, 0.6), ["age"], {"bins": {"age": [45]}, "min_slice_size": 1})
    assert sorted(slices["age"]["slices"]) == ["< 45", ">= 45"] and slices["age"]["bins"] == [45.0]


def test_load_dataset_counts_any_of_the_positive_values_and_names_absent_columns() -> None:
    from tools.load_dataset import quality_checks

    frame = lending_frame(300)
    quality = quality_checks(frame, {**STANDARDS, "protected_attributes": ["age", "race"]}, 50)
    balance = quality["class_balance"]
    assert balance["positive_values"] == sorted(BAD_STATUSES) and balance["positive_count"] == int(bad_labels(frame).sum())
    assert quality["standards_columns"]["protected_attributes"] == {"present": ["age"], "absent": ["race"]}
    json.dumps(quality)


def test_the_briefing_reads_a_list_of_positive_values_as_any_of_them() -> None:
    from resources.briefing import _label_lines

    line = _label_lines({"label": {"target": "loan_status", "positive_class": ["Charged Off", "Late (31-120 days)"]}})[0]
    assert line == "- Label: target `loan_status`, positive class any of `Charged Off`, `Late (31-120 days)`"
