"""Rule cases for policies/data.py (dataset reads), plus the pure helpers they use."""

from __future__ import annotations

from typing import Any

from policies.data import MASK, integrity, integrity_message, is_pii, named_columns, pii_masked, registered, shadow_only
from tests.policies.cases import RuleCase, config

HASH = "ab" * 32
OTHER = "cd" * 32
IMPORTED = {"registered": True, "audited": True, "detail": "imported and recorded in the audit chain", "imported_by": "ops"}


def facts(**overrides: Any) -> dict[str, Any]:
    """Facts of a clean inspection of HASH with one masked sample row."""
    base = {
        "requested": HASH,
        "location": f"data/shadow/{HASH}",
        "symlinked": False,
        "recomputed": HASH,
        "problems": [],
        "columns": ["customer_id", "Email", "income", "default"],
        "sample": [{"customer_id": MASK, "Email": MASK, "income": 1.5, "default": 0}],
        "registration": IMPORTED,
    }
    return {**base, **overrides}


MODIFIED = {"kind": "modified", "path": "part-a.csv", "detail": "part-a.csv was changed after import (SHA-256 differs)"}

CASES = [
    RuleCase("data.shadow_only", "allow", facts(), name="the dataset dir itself"),
    RuleCase("data.shadow_only", "deny", facts(symlinked=True, location=f"data/shadow/{OTHER}"), name="symlink to another dataset"),
    RuleCase("data.shadow_only", "deny", facts(symlinked=True, location=f"data/shadow/{HASH}"), name="symlink anywhere on the path"),
    RuleCase("data.shadow_only", "deny", facts(location="a place outside the workspace"), name="outside"),
    RuleCase("data.shadow_only", "deny", facts(location=f"data/shadow/../shadow/{HASH}"), name="dot-dot"),
    RuleCase("data.integrity", "allow", facts(), name="recomputed equals requested"),
    RuleCase("data.integrity", "deny", facts(recomputed=OTHER), name="hash mismatch"),
    RuleCase("data.integrity", "deny", facts(recomputed=None), name="nothing readable"),
    RuleCase("data.integrity", "deny", facts(problems=[MODIFIED]), name="modified file"),
    RuleCase("data.registered", "allow", facts(), name="imported and audited"),
    RuleCase("data.registered", "deny", facts(registration={**IMPORTED, "registered": False, "audited": False}), name="never imported"),
    RuleCase("data.registered", "deny", facts(registration={**IMPORTED, "audited": False}), name="registry entry without its audit record"),
    RuleCase("data.registered", "deny", facts(registration=None), name="no registry facts"),
    RuleCase("data.registered", "deny", facts(registration={"registered": "true", "audited": "true"}), name="truthy strings are not booleans"),
    RuleCase("data.pii_masked", "allow", facts(), name="pii masked"),
    RuleCase("data.pii_masked", "allow", facts(columns=[], sample=[]), name="nothing shown"),
    RuleCase("data.pii_masked", "deny", facts(sample=[{"customer_id": MASK, "Email": "a@b.c", "income": 1.5, "default": 0}]), name="case variant unmasked"),
    RuleCase("data.pii_masked", "deny", facts(sample=[{"customer_id": None, "Email": MASK}]), name="null is not masked"),
    RuleCase("data.pii_masked", "deny", facts(sample=[{"Email": MASK}]), name="pii column left out of a row"),
    RuleCase("data.pii_masked", "allow", facts(detailed=["income", "default"], sample=[{"income": 1.5, "default": 0}]), name="pii column not detailed"),
    RuleCase("data.pii_masked", "deny", facts(detailed=["customer_id", "income"], sample=[{"customer_id": "C1", "income": 1.5}]), name="detailed pii column unmasked"),
]


def test_integrity_denial_names_each_problem_and_says_how_to_recover() -> None:
    problems = [MODIFIED, {"kind": "extra", "path": "x.csv", "detail": "x.csv was not imported (extra file)"}]
    decision = integrity(facts(problems=problems), config())
    assert "part-a.csv was changed after import" in decision.reason and "x.csv was not imported" in decision.reason
    assert "mlgate data add" in decision.remediation and "restore" in decision.remediation


def test_integrity_reason_lists_at_most_five_problems_and_counts_the_rest() -> None:
    problems = [{"kind": "extra", "path": f"{n}.csv", "detail": f"{n}.csv extra"} for n in range(8)]
    reason, _ = integrity_message(HASH, problems, None)
    assert "4.csv extra" in reason and "5.csv extra" not in reason and "and 3 more" in reason


def test_pii_matching_ignores_case_and_surrounding_spaces() -> None:
    assert is_pii(" EMAIL ", ["email"]) and not is_pii("emails", ["email"])


def test_named_columns_finds_look_alike_spellings_with_the_exact_one_first() -> None:
    columns = ["Ｇｅｎｄｅｒ", "age", "gen\u200bder", "gender", "genders"]
    assert named_columns(columns, "gender") == ["gender", "Ｇｅｎｄｅｒ", "gen\u200bder"]
    assert named_columns(["GENDER ", "Gender"], "gender") == ["GENDER ", "Gender"]  # no exact one: dataset order
    assert named_columns(columns, "race") == []


def test_shadow_only_denial_says_where_the_link_led() -> None:
    decision = shadow_only(facts(symlinked=True, location=f"data/shadow/{OTHER}"), config())
    assert OTHER in decision.reason and "mlgate data add" in decision.remediation


def test_pii_rule_reads_the_pii_columns_from_the_standards() -> None:
    standards = {**config()["standards"], "pii_columns": ["income"]}
    assert not pii_masked(facts(), config(standards=standards)).allowed


def test_registered_denial_says_an_operator_must_import_the_file() -> None:
    decision = registered(facts(registration={**IMPORTED, "registered": False, "audited": False, "detail": "it is not in the dataset registry"}), config())
    assert not decision.allowed and "not imported by an operator" in decision.reason and "not in the dataset registry" in decision.reason
    assert "operator" in decision.remediation and "mlgate data add" in decision.remediation
