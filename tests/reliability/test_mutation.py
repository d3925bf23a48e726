"""Policy mutation at the unit level: for every registered rule, the allow-all mutant fails at least
one of its own rule cases (tests/policies). bench/mutation.py runs the integration tests against
each mutant as well and reports which rules they catch."""

from __future__ import annotations

from collections import defaultdict

from policies.decision import decide_one
from policies.registry import load_all
from tests.policies.test_rule_coverage import all_cases
from tests.reliability.mutants import mutated


def killed_by_cases() -> dict[str, bool]:
    cases = defaultdict(list)
    for case in all_cases():
        cases[case.rule_id].append(case)
    killed = {}
    for rule_id, rule in load_all().items():
        with mutated(rule_id):
            killed[rule_id] = any(decide_one(rule, c.facts, c.config).allowed is not (c.expect == "allow") for c in cases[rule_id])
    return killed


def test_every_rule_mutated_to_allow_all_is_caught_by_a_rule_case() -> None:
    killed = killed_by_cases()
    assert [rule_id for rule_id, caught in killed.items() if not caught] == []
    assert len(killed) == len(load_all())


def test_a_mutant_is_undone_after_its_check() -> None:
    rule_id = next(c.rule_id for c in all_cases() if c.expect == "deny")
    case = next(c for c in all_cases() if c.rule_id == rule_id and c.expect == "deny")
    with mutated(rule_id) as rule:
        assert decide_one(rule, case.facts, case.config).allowed
    assert not decide_one(load_all()[rule_id], case.facts, case.config).allowed
