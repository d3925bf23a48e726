"""Pure governance rules: `(facts, config) -> Decision`. No I/O, no clock, no environment."""

from policies.decision import REGISTRY, Decision, Rule, Verdict, evaluate, rule
from policies.principal import ROLES, Principal, Role

__all__ = ["REGISTRY", "ROLES", "Decision", "Principal", "Role", "Rule", "Verdict", "evaluate", "rule"]
