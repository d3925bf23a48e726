"""Decisions, rules and the pure evaluator.

A rule is a pure function `(facts, config) -> Decision`. The evaluator runs every rule of a
policy set and combines them: deny by default (an empty set denies), a deny overrides any
allow, and a rule that raises is a deny carrying that rule's id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RuleCheck = Callable[[Any, Mapping[str, Any]], "Decision"]


@dataclass(frozen=True)
class Decision:
    """One rule's answer. `remediation` tells an agent what to do instead."""

    allowed: bool
    rule_id: str
    reason: str
    remediation: str = ""

    @classmethod
    def allow(cls, rule_id: str, reason: str = "ok") -> Decision:
        return cls(True, rule_id, reason)

    @classmethod
    def deny(cls, rule_id: str, reason: str, remediation: str) -> Decision:
        return cls(False, rule_id, reason, remediation)


@dataclass(frozen=True)
class Rule:
    """A registered rule: a stable id, where it comes from, what it guards."""

    id: str
    source: str
    description: str
    check: RuleCheck = field(repr=False, compare=False)

    def __call__(self, facts: Any, config: Mapping[str, Any]) -> Decision:
        return self.check(facts, config)


@dataclass(frozen=True)
class Verdict:
    """The combined answer of a policy set, with every rule's decision."""

    decisions: tuple[Decision, ...]

    @property
    def allowed(self) -> bool:
        return bool(self.decisions) and all(d.allowed for d in self.decisions)

    @property
    def denials(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.allowed)

    @property
    def deciding(self) -> Decision:
        """The first denial, or a summary allow."""
        if self.denials:
            return self.denials[0]
        if not self.decisions:
            return NO_RULES
        return Decision.allow(",".join(d.rule_id for d in self.decisions), "all rules allow")

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(d.rule_id for d in self.decisions)


NO_RULES = Decision.deny(
    "policy.default_deny",
    "no rule covers this action, and what is not allowed is denied",
    "report this to the operator: the tool has no policy set",
)

REGISTRY: dict[str, Rule] = {}


def rule(rule_id: str, *, source: str, description: str) -> Callable[[RuleCheck], Rule]:
    """Register a rule under a stable id. Raises ValueError on a duplicate id."""

    def register(check: RuleCheck) -> Rule:
        if rule_id in REGISTRY:
            raise ValueError(f"duplicate rule id {rule_id!r}")
        registered = Rule(rule_id, source, description, check)
        REGISTRY[rule_id] = registered
        return registered

    return register


def decide_one(rule_: Rule, facts: Any, config: Mapping[str, Any]) -> Decision:
    """Run one rule; anything other than a Decision, or an exception, is a deny (fails closed)."""
    try:
        decision = rule_(facts, config)
    except Exception as exc:  # noqa: BLE001 - a rule that raises must deny, whatever it raised
        return Decision.deny(rule_.id, f"rule failed to evaluate ({type(exc).__name__})", "fix the input or report to the operator")
    if not isinstance(decision, Decision) or decision.rule_id != rule_.id:
        return Decision.deny(rule_.id, "rule returned no valid decision", "report to the operator")
    return decision


def evaluate(rules: Iterable[Rule], facts: Any, config: Mapping[str, Any]) -> Verdict:
    """Evaluate every rule (no short-circuit: the audit records all of them)."""
    return Verdict(tuple(decide_one(r, facts, config) for r in rules))
