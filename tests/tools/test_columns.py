"""The column report an auditor reads (load_dataset's quality.standards_columns, a run's evidence):
a protected attribute or PII column in a look-alike spelling is present and names its dataset
column; the label and time column stay exact, and a look-alike of them is named in a warning."""

from __future__ import annotations

import hashlib

import pytest

from server.cas import StoredFile, read_frame
from tools.columns import column_report

STANDARDS = {
    "label": {"target": "loan_status"},
    "time_column": "issue_d",
    "pii_columns": ["email"],
    "protected_attributes": ["gender", "age"],
}
LOOK_ALIKES = ["Gender", "ｇｅｎｄｅｒ", "gen\u200bder", "gender "]


@pytest.mark.parametrize("spelling", LOOK_ALIKES)
def test_a_protected_attribute_in_a_look_alike_spelling_is_present_with_its_actual_column(spelling: str) -> None:
    report = column_report(["loan_status", "issue_d", "email", spelling, "age"], STANDARDS)
    assert report["protected_attributes"] == {"present": ["gender", "age"], "absent": []}
    assert report["matched"]["protected_attributes"] == {"gender": spelling}
    assert report["warnings"] == []


def test_exact_spellings_are_present_without_a_matched_column_or_warning() -> None:
    report = column_report(["loan_status", "issue_d", "email", "gender", "age"], STANDARDS)
    assert report["protected_attributes"] == {"present": ["gender", "age"], "absent": []}
    assert report["pii_columns"] == {"present": ["email"], "absent": []}
    assert report["matched"] == {"pii_columns": {}, "protected_attributes": {}} and report["other_spellings"] == {"pii_columns": {}, "protected_attributes": {}}
    assert report["label"] == {"name": "loan_status", "present": True, "look_alikes": []} and report["warnings"] == []


def test_a_protected_attribute_truly_absent_is_still_reported_absent() -> None:
    report = column_report(["loan_status", "issue_d", "sex", "ages"], STANDARDS)
    assert report["protected_attributes"] == {"present": [], "absent": ["gender", "age"]}
    assert report["warnings"] == [
        "PII columns named by the standards but absent from the dataset: ['email']",
        "protected attributes named by the standards but absent from the dataset: ['gender', 'age']",
    ]


def test_a_pii_column_in_a_look_alike_spelling_names_its_actual_column() -> None:
    report = column_report(["loan_status", "issue_d", "Ｅｍａｉｌ", "gender", "age"], STANDARDS)
    assert report["pii_columns"] == {"present": ["email"], "absent": []} and report["matched"]["pii_columns"] == {"email": "Ｅｍａｉｌ"}


def test_a_look_alike_label_is_not_the_label_and_the_warning_names_the_actual_column() -> None:
    report = column_report(["Loan_Status", "issue_d", "email", "gender", "age"], STANDARDS)
    assert report["label"] == {"name": "loan_status", "present": False, "look_alikes": ["Loan_Status"]}
    assert report["warnings"] == [
        "the label column 'loan_status' is not in the dataset; 'Loan_Status' looks like it — rename it at import or set data.target to the exact name"
    ]


def test_a_look_alike_time_column_is_not_the_time_column_and_the_warning_names_it() -> None:
    report = column_report(["loan_status", "ISSUE_D", "email", "gender", "age"], STANDARDS)
    assert report["time_column"] == {"name": "issue_d", "present": False, "look_alikes": ["ISSUE_D"]}
    assert len(report["warnings"]) == 1 and "'ISSUE_D' looks like it" in report["warnings"][0] and "time_column" in report["warnings"][0]


def test_a_look_alike_beside_the_exact_label_is_named_as_a_feature_to_exclude() -> None:
    report = column_report(["loan_status", "Loan_Status", "issue_d", "email", "gender", "age"], STANDARDS, target="loan_status")
    assert report["label"] == {"name": "loan_status", "present": True, "look_alikes": ["Loan_Status"]}
    assert report["warnings"] == ["['Loan_Status'] look like the label column 'loan_status' but are other columns: they are never features, and run_experiment is denied (data.no_label_or_time_look_alike) until they are dropped or renamed at import or named in features.exclude"]


def test_two_columns_of_one_protected_attribute_both_import_and_the_report_says_which_one_is_sliced() -> None:
    csv = b"gender,Gender,age,loan_status\nF,M,30,Current\nM,F,40,Charged Off\n"
    frame = read_frame([StoredFile("book.csv", len(csv), hashlib.sha256(csv).hexdigest(), csv)])  # not a repeated header
    report = column_report(frame.columns, STANDARDS)
    assert report["protected_attributes"]["present"] == ["gender", "age"] and report["matched"]["protected_attributes"] == {}
    assert report["other_spellings"]["protected_attributes"] == {"gender": ["Gender"]}
    assert "the protected attribute 'gender' is in the dataset more than once: fairness slices use 'gender', not ['Gender']" in report["warnings"][-1]


def test_of_two_look_alikes_without_the_exact_spelling_the_first_in_dataset_order_is_matched() -> None:
    report = column_report(["loan_status", "issue_d", "email", "GENDER", "Gender", "age"], STANDARDS)
    assert report["matched"]["protected_attributes"] == {"gender": "GENDER"} and report["other_spellings"]["protected_attributes"] == {"gender": ["Gender"]}
