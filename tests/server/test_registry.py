"""The registry adapter against a real sqlite MLflow registry: versions by run, alias moves and the
alias history that rollback replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.registry import ModelRegistry, alias_stack, check_model_name
from server.tracking import MlflowTracking
from tests.server.registry_helpers import MODEL, model_run, promoted
from tools.errors import InvalidInput, NotFound


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> MlflowTracking:
    store = tmp_path_factory.mktemp("registry")
    return MlflowTracking(f"sqlite:///{store / 'mlflow.db'}", store / "artifacts")


@pytest.fixture
def experiment(tracking: MlflowTracking, request: pytest.FixtureRequest) -> str:
    return tracking.get_or_create_experiment(f"demo-bank/{request.node.name}")


@pytest.fixture
def registry(tracking: MlflowTracking, tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tracking, tmp_path / "registry")


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    return f"{MODEL}-{request.node.name.replace('[', '-').replace(']', '')}"[:200]


@pytest.mark.parametrize(
    ("events", "stack"),
    [
        ([], []),
        ([{"action": "promote", "version": "1"}, {"action": "promote", "version": "2"}], ["1", "2"]),
        ([{"action": "promote", "version": "1"}, {"action": "promote", "version": "1"}], ["1"]),
        ([{"action": "promote", "version": "1"}, {"action": "promote", "version": "2"}, {"action": "rollback", "version": "1"}], ["1"]),
        ([{"action": "promote", "version": "1"}, {"action": "promote", "version": "2"}, {"action": "rollback", "version": "1"}, {"action": "promote", "version": "3"}], ["1", "3"]),
        ([{"action": "rollback", "version": "1"}], []),
    ],
)
def test_alias_stack_replays_promotions_and_rollbacks(events: list[dict[str, Any]], stack: list[str]) -> None:
    assert alias_stack(events) == stack


@pytest.mark.parametrize("name", ["x' or name='y", "../model", "-model", "", "a" * 201, "model name", "model\n"])
def test_hostile_model_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        check_model_name(name)


def test_a_registered_version_is_found_by_its_run(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    run_id = model_run(tracking, experiment)
    assert registry.version_for_run(model, run_id) is None
    version = registry.register(model, run_id, tracking.get_run(run_id)["artifact_uri"], {"mlgate.run_id": run_id})
    assert registry.version_for_run(model, run_id) == version == "1"
    found = registry.version(model, version)
    assert found["run_id"] == run_id and found["source"].endswith("/model") and found["tags"]["mlgate.run_id"] == run_id
    assert registry.has_model_artifact(run_id) and not registry.has_model_artifact(tracking.start_run(experiment, {}))


def test_pointing_twice_at_the_same_version_records_one_move(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (run_id, version), = promoted(registry, tracking, experiment, "candidate", 1, model)
    registry.point(model, "candidate", version, {"run_id": run_id})
    assert registry.alias_version(model, "candidate") == version
    assert [e["action"] for e in registry.events(model, "candidate")] == ["promote"]


def test_roll_back_returns_the_alias_to_the_previous_version_and_records_it(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (first, v1), (_, v2) = promoted(registry, tracking, experiment, "champion", 2, model)
    stages = [{"version": v2, "from": "champion", "to": "archived"}, {"version": v1, "from": "archived", "to": "champion"}]
    assert registry.roll_back(model, "champion", {"by": "alice"}) == (v2, v1, stages)
    assert registry.alias_version(model, "champion") == v1 and registry.stack(model, "champion") == [v1]
    assert registry.events(model, "champion")[-1] == {"action": "rollback", "version": v1, "from_version": v2, "by": "alice", "stages": stages, "seq": 3}
    with pytest.raises(NotFound):
        registry.roll_back(model, "champion", {"by": "alice"})


def test_roll_back_refuses_an_alias_moved_outside_mlgate(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (_, v1), (_, v2), (_, v3) = promoted(registry, tracking, experiment, "champion", 3, model)
    tracking.set_alias(model, "champion", v1)
    with pytest.raises(NotFound):
        registry.roll_back(model, "champion", {"by": "alice"})
    assert registry.alias_version(model, "champion") == v1 and registry.stack(model, "champion") == [v1, v2, v3]


def test_aliases_keep_separate_histories(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    promoted(registry, tracking, experiment, "candidate", 2, model)
    assert registry.stack(model, "champion") == [] and registry.stack(model, "candidate") == ["1", "2"]


def test_list_models_shows_aliases_and_versions(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (first, _), (second, _) = promoted(registry, tracking, experiment, "candidate", 2, model)
    listed = next(m for m in registry.list_models() if m["name"] == model)
    assert listed["aliases"] == {"candidate": "2"}
    assert [(v["version"], v["run_id"]) for v in listed["versions"]] == [("1", first), ("2", second)]


def stages(registry: ModelRegistry, model: str) -> dict[str, str]:
    return {v["version"]: v["stage"] for m in registry.list_models() if m["name"] == model for v in m["versions"]}


def test_a_replaced_champion_is_archived_and_the_history_records_both_stage_changes(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (_, v1), (_, v2) = promoted(registry, tracking, experiment, "candidate", 2, model)
    assert registry.point(model, "champion", v1, {"by": "alice"}) == [{"version": v1, "from": "candidate", "to": "champion"}]
    assert registry.point(model, "champion", v2, {"by": "alice"}) == [
        {"version": v2, "from": "candidate", "to": "champion"}, {"version": v1, "from": "champion", "to": "archived"},
    ]  # fmt: skip
    assert stages(registry, model) == {v1: "archived", v2: "champion"}
    assert tracking.client.get_model_version(model, v1).tags["mlgate.stage"] == "archived"
    assert registry.events(model, "champion")[-1]["stages"][-1] == {"version": v1, "from": "champion", "to": "archived"}


def test_a_new_version_pointed_at_by_the_candidate_alias_records_its_first_stage(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (run_id, version), = promoted(registry, tracking, experiment, "candidate", 1, model)
    assert registry.events(model, "candidate")[0]["stages"] == [{"version": version, "from": None, "to": "candidate"}]
    assert registry.stage(model, version) == "candidate"


def test_archive_retires_an_unaliased_candidate_and_refuses_an_aliased_one(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    (_, v1), (_, v2) = promoted(registry, tracking, experiment, "candidate", 2, model)
    with pytest.raises(NotFound):
        registry.archive(model, v2, {"by": "alice"})
    assert registry.archive(model, v1, {"by": "alice"}) == [{"version": v1, "from": "candidate", "to": "archived"}]
    assert stages(registry, model) == {v1: "archived", v2: "candidate"}
    assert registry.events(model, "lifecycle")[-1]["action"] == "archive" and registry.stack(model, "candidate") == [v1, v2]


def test_one_model_is_looked_up_by_its_exact_name_and_an_unregistered_one_is_none(registry: ModelRegistry, tracking: MlflowTracking, experiment: str, model: str) -> None:
    promoted(registry, tracking, experiment, "candidate", 1, model)
    promoted(registry, tracking, experiment, "candidate", 1, f"{model}x")  # a name `model` is a prefix of
    listed = registry.model(model)
    assert listed == next(m for m in registry.list_models() if m["name"] == model)
    assert listed["aliases"] == {"candidate": "1"} and len(listed["versions"]) == 1
    assert registry.model(f"{model}-never-registered") is None
    with pytest.raises(InvalidInput):
        registry.model("x' or name like '%")
