from policies.decision import Decision, Rule, evaluate


def _allow(facts, config):
    return Decision.allow("t.allow")


def _deny(facts, config):
    return Decision.deny("t.deny", "no", "do something else")


def _boom(facts, config):
    raise KeyError("missing")


ALLOW = Rule("t.allow", "test", "allows", _allow)
DENY = Rule("t.deny", "test", "denies", _deny)
BOOM = Rule("t.boom", "test", "raises", _boom)


def test_empty_policy_set_denies_by_default() -> None:
    verdict = evaluate([], None, {})
    assert not verdict.allowed and verdict.deciding.rule_id == "policy.default_deny"


def test_a_deny_overrides_any_allow() -> None:
    verdict = evaluate([ALLOW, DENY, ALLOW], None, {})
    assert not verdict.allowed and verdict.deciding.rule_id == "t.deny"


def test_a_rule_that_raises_is_a_deny_with_its_id() -> None:
    verdict = evaluate([ALLOW, BOOM], None, {})
    assert not verdict.allowed and verdict.deciding.rule_id == "t.boom"


def test_every_rule_is_evaluated_for_the_audit() -> None:
    assert evaluate([DENY, ALLOW], None, {}).rule_ids == ("t.deny", "t.allow")


def test_a_rule_answering_with_another_rules_id_is_a_deny() -> None:
    liar = Rule("t.liar", "test", "lies", _allow)
    assert not evaluate([liar], None, {}).allowed
