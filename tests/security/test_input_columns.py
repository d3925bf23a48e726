"""A dataset's PII column written in another case or with stray spaces (`Email`, `SSN `) is the
standards' PII column everywhere, as load_dataset already masks it: never a feature of a run,
never let through by training.no_pii_features, and reported present, not absent."""

from __future__ import annotations

import hashlib

from policies.training import no_pii_features, protected_attributes_excluded
from server.cas import StoredFile, read_frame
from tools.columns import column_report
from tools.load_dataset import masked_sample
from tools.run_features import select_features

STANDARDS = {"pii_columns": ["email", "ssn"], "label": {"target": "default"}, "protected_attributes": []}
CONFIG = {"data": {"target": "default"}, "features": {"exclude": [], "use_protected_attributes": False}}
CSV = b"Email,SSN ,income,email_domain,default\nann@example.com,123-45-6789,50,example.com,0\nbob@example.com,987-65-4321,60,example.com,1\n"


def _frame() -> object:
    return read_frame([StoredFile("customers.csv", len(CSV), hashlib.sha256(CSV).hexdigest(), CSV)])


def test_a_pii_column_in_another_case_or_with_spaces_is_masked_and_never_a_feature() -> None:
    frame = _frame()
    assert {row["Email"] for row in masked_sample(frame, STANDARDS["pii_columns"], 5)} == {"***"}
    features, _ = select_features(frame, CONFIG, STANDARDS)
    assert features == ["income", "email_domain"]  # a column merely containing a PII name stays a feature


def test_no_pii_features_denies_a_pii_column_in_another_case_and_allows_other_columns() -> None:
    config = {"standards": STANDARDS}
    denied = no_pii_features({"feature_columns": ["income", " EMAIL"]}, config)
    assert not denied.allowed and "EMAIL" in denied.reason
    assert no_pii_features({"feature_columns": ["income", "email_domain"]}, config).allowed


def test_the_column_report_finds_pii_columns_in_any_case_and_names_the_truly_absent() -> None:
    report = column_report(["Email", "income", "default"], STANDARDS)
    assert report["pii_columns"] == {"present": ["email"], "absent": ["ssn"]}
    assert report["warnings"] == ["PII columns named by the standards but absent from the dataset: ['ssn']"]


# --- look-alike names: full-width letters, zero-width characters, another case ----------------------

LOOK_ALIKES = ["ｅｍａｉｌ", "e\u200bmail", "EMAIL\ufeff", "Ｓｓｎ"]


def test_a_pii_column_spelled_with_full_width_or_zero_width_characters_is_pii() -> None:
    frame = _frame().rename(columns={"Email": LOOK_ALIKES[0], "SSN ": LOOK_ALIKES[1]})
    assert {row[LOOK_ALIKES[0]] for row in masked_sample(frame, STANDARDS["pii_columns"], 5)} == {"***"}
    features, _ = select_features(frame, CONFIG, STANDARDS)
    assert features == ["income", "email_domain"]
    denied = no_pii_features({"feature_columns": ["income", *LOOK_ALIKES]}, {"standards": STANDARDS})
    assert not denied.allowed and all(name in denied.reason for name in ("EMAIL", "Ｓｓｎ"))


def test_a_protected_attribute_in_another_case_or_look_alike_spelling_is_never_a_silent_feature() -> None:
    standards = {**STANDARDS, "protected_attributes": ["gender", "age"]}
    frame = _frame().assign(Gender=["f", "m"], age=[30, 40]).rename(columns={"Gender": "Ｇｅｎｄｅｒ"})
    features, _ = select_features(frame, CONFIG, standards)
    assert features == ["income", "email_domain"]
    facts = {"feature_columns": ["income", "GENDER"], "config": CONFIG}
    denied = protected_attributes_excluded(facts, {"standards": standards})
    assert not denied.allowed and "GENDER" in denied.reason
    assert protected_attributes_excluded({"feature_columns": ["income"], "config": CONFIG}, {"standards": standards}).allowed
