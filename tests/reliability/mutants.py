"""Policy mutants: one registered rule replaced, in place, by a check that allows everything. Every
ToolSpec holds the registry's Rule objects, so the mutant is what the enforcement point runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from policies.decision import Decision, Rule
from policies.registry import load_all


def allow_all(rule_id: str) -> Rule:
    """Mutate the registered rule `rule_id` to allow everything. Raises KeyError for an unknown id."""
    target = load_all()[rule_id]

    def mutant(facts: Any, config: Any) -> Decision:
        return Decision.allow(rule_id, "mutant: allows everything")

    object.__setattr__(target, "check", mutant)
    return target


@contextmanager
def mutated(rule_id: str) -> Iterator[Rule]:
    target = load_all()[rule_id]
    original = target.check
    try:
        yield allow_all(rule_id)
    finally:
        object.__setattr__(target, "check", original)
