from policies.lifecycle import stage_of
from policies.registry import load_all
from tests.policies.cases import RuleCase


def move(action: str, stage: str | None, target: str, version: str | None = "3", aliases: tuple[str, ...] = ()) -> dict[str, object]:
    return {"lifecycle": {"action": action, "version": version, "stage": stage, "target": target, "aliases": list(aliases)}}


CASES = [
    RuleCase("lifecycle.transition", "allow", move("promote", None, "candidate", version=None), name="new_run_to_candidate"),
    RuleCase("lifecycle.transition", "allow", move("promote", "archived", "candidate"), name="archived_back_to_candidate"),
    RuleCase("lifecycle.transition", "allow", move("promote", "candidate", "champion"), name="candidate_to_champion"),
    RuleCase("lifecycle.transition", "allow", move("rollback", "archived", "champion"), name="rollback_restores_previous_champion"),
    RuleCase("lifecycle.transition", "allow", move("rollback", None, "champion", version=None), name="rollback_without_history_left_to_its_rule"),
    RuleCase("lifecycle.transition", "allow", move("archive", "candidate", "archived"), name="archive_a_candidate"),
    RuleCase("lifecycle.transition", "deny", move("promote", None, "champion", version=None), name="unregistered_run_to_champion"),
    RuleCase("lifecycle.transition", "deny", move("promote", "archived", "champion"), name="archived_straight_to_champion"),
    RuleCase("lifecycle.transition", "deny", move("promote", "champion", "candidate"), name="champion_demoted_to_candidate"),
    RuleCase("lifecycle.transition", "deny", move("rollback", "archived", "candidate"), name="candidate_alias_back_onto_archived"),
    RuleCase("lifecycle.transition", "deny", move("archive", "champion", "archived"), name="archive_the_champion_by_hand"),
    RuleCase("lifecycle.transition", "deny", move("archive", "archived", "archived"), name="archive_twice"),
    RuleCase("lifecycle.transition", "deny", move("promote", "retired", "champion"), name="unknown_stage"),
    RuleCase("lifecycle.stage_recorded", "allow", {"lifecycle": {"version": "3", "stage": "candidate", "recorded": "candidate"}}, name="agrees"),
    RuleCase("lifecycle.stage_recorded", "allow", {"lifecycle": {"version": "3", "stage": "candidate", "recorded": None}}, name="never_recorded"),
    RuleCase("lifecycle.stage_recorded", "deny", {"lifecycle": {"version": "3", "stage": "candidate", "recorded": "archived"}}, name="tag_forged_back_to_candidate"),
    RuleCase("lifecycle.stage_recorded", "allow", {"lifecycle": {"action": "promote", "target": "champion", "version": "3", "stage": "candidate", "recorded": "candidate"}}, name="mlgate_candidate_to_champion"),
    RuleCase("lifecycle.stage_recorded", "deny", {"lifecycle": {"action": "promote", "target": "champion", "version": "3", "stage": "candidate", "recorded": None}}, name="untagged_version_to_champion"),
    RuleCase("lifecycle.archive_unaliased", "allow", move("archive", "candidate", "archived"), name="unaliased"),
    RuleCase("lifecycle.archive_unaliased", "deny", move("archive", "candidate", "archived", aliases=("candidate",)), name="candidate_alias_holds_it"),
    RuleCase("lifecycle.own_model", "allow", {"model": "demo-bank-credit-default", "own_model": "demo-bank-credit-default"}, name="this_projects_model"),
    RuleCase("lifecycle.own_model", "deny", {"model": "other-bank-other-project", "own_model": "demo-bank-credit-default"}, name="another_projects_model"),
    RuleCase("lifecycle.own_model", "deny", {"model": "demo-bank-credit-default", "own_model": None}, name="own_model_unknown"),
]


def test_a_denied_champion_promotion_says_to_go_through_candidate() -> None:
    decision = load_all()["lifecycle.transition"](move("promote", "archived", "champion"), {})
    assert not decision.allowed and "candidate first" in decision.remediation


def test_versions_without_a_recorded_stage_count_as_candidate_or_as_the_champion_alias_says() -> None:
    assert stage_of({"mlgate.stage": "archived"}, ["champion"]) == "archived"
    assert stage_of({}, ["champion"]) == "champion" and stage_of({}, []) == "candidate"
    assert stage_of({"mlgate.stage": "bogus"}, []) == "candidate"
