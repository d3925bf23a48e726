"""Every registered rule has an allow case and a deny case, and every case holds."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import tests.policies
from policies.decision import decide_one
from policies.registry import load_all
from tests.policies.cases import RuleCase


def all_cases() -> list[RuleCase]:
    cases: list[RuleCase] = []
    for module in pkgutil.iter_modules(tests.policies.__path__):
        if module.name.startswith("test_"):
            cases.extend(getattr(importlib.import_module(f"tests.policies.{module.name}"), "CASES", []))
    return cases


@pytest.mark.parametrize("case", all_cases(), ids=lambda c: c.id)
def test_rule_case_gives_the_expected_decision(case: RuleCase) -> None:
    rules = load_all()
    decision = decide_one(rules[case.rule_id], case.facts, case.config)
    assert decision.allowed is (case.expect == "allow"), decision
    if not decision.allowed:
        assert decision.reason and decision.remediation


def test_every_rule_has_an_allow_case_and_a_deny_case() -> None:
    covered = {(c.rule_id, c.expect) for c in all_cases()}
    missing = [f"{rid}:{kind}" for rid in load_all() for kind in ("allow", "deny") if (rid, kind) not in covered]
    assert not missing, f"rules without cases: {missing}"


def test_unknown_rule_ids_in_cases_fail() -> None:
    unknown = {c.rule_id for c in all_cases()} - set(load_all())
    assert not unknown
