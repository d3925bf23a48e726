"""promote against a registry that moves under it: MLflow's pointer changed outside mlgate, another
promotion landing between a call's gates and its move, a promotion cut short after its move.
Through the real server (in-memory MCP client) on the promotion lab: a real run, sqlite MLflow."""

from __future__ import annotations

from typing import Any

import pytest

import tools.promote as promote_module
from server.cli import main
from tests.credentials import use_token
from tests.tools.promotion_lab import MODEL, Lab, build_lab, call, clone_run, reset_registry
from tests.tools.test_promote import approve, as_candidate, denied_by, with_reproduction

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("promote-consistency"))


@pytest.fixture(autouse=True)
def clean_registry(lab: Lab) -> None:
    reset_registry(lab)


def strong_champion(lab: Lab) -> str:
    """A champion the lab's run trails far beyond tolerance, promoted through mlgate's history."""
    better = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.99})
    version = lab.ports.registry.register(MODEL, better, lab.ports.tracking.get_run(better)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": better, "by": "test"})
    return version


def _delete_pointer(lab: Lab) -> None:
    lab.client.delete_registered_model_alias(MODEL, "champion")


def _point_at_a_weak_version(lab: Lab) -> None:
    weak = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.5})
    version = lab.ports.registry.register(MODEL, weak, lab.ports.tracking.get_run(weak)["artifact_uri"], {})
    lab.client.set_registered_model_alias(MODEL, "champion", version)


@pytest.mark.parametrize("move", [_delete_pointer, _point_at_a_weak_version], ids=["pointer-deleted", "pointer-moved-to-a-weak-version"])
async def test_the_champion_gate_measures_against_the_recorded_champion_not_mlflows_pointer(lab: Lab, move: Any) -> None:
    """Someone with the MLflow UI (or a shell on the store) must not lower the bar an agent's
    candidate is measured against."""
    strong_champion(lab)
    move(lab)
    failed, content = await call(lab, "promote", {"run_id": lab.run_id})
    assert failed and denied_by(content) == {"promotion.champion_tolerance"}
    assert lab.ports.registry.alias_version(MODEL, "candidate") is None


async def _approved_champion_promotion(lab: Lab, run_id: str) -> str:
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.human_approval"}, content
    assert await approve(lab, content["approval_id"]) == 0
    return content["approval_id"]


async def test_a_champion_promotion_whose_champion_moved_after_its_gates_changes_nothing(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both approvals read "no champion -> this run". The second promotion's gates and approval were
    about replacing no champion; once the first one lands in between, it must not replace that
    champion unmeasured, and its approval stays unspent."""
    first = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.99}), (0.99, 0.99)))
    second = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8)))
    first_approval, second_approval = [await _approved_champion_promotion(lab, run) for run in (first, second)]
    original, landed = promote_module.promote_run, []

    def first_lands_in_between(request: Any, facts: Any, ctx: Any, result: Any) -> Any:
        if request.run_id == second and not landed:
            landed.append(_promote_at_terminal(lab, "carol", first))
        return original(request, facts, ctx, result)

    monkeypatch.setattr(promote_module, "promote_run", first_lands_in_between)
    failed, content = await call(lab, "promote", {"run_id": second, "alias": "champion"}, lab.human())
    champion = lab.ports.registry.alias_version(MODEL, "champion")
    assert landed == [0] and failed and content["rule_id"] == "promotion.alias_moved" and "nothing was changed" in content["reason"]
    assert lab.ports.registry.version(MODEL, champion)["run_id"] == first and lab.ports.registry.stack(MODEL, "champion") == [champion]
    assert lab.ports.approvals.get(first_approval)["status"] == "consumed"
    assert lab.ports.approvals.get(second_approval)["status"] == "approved"


def _promote_at_terminal(lab: Lab, name: str, run_id: str) -> int:
    """`mlgate promote RUN --alias champion` by another human, as its own process would run it."""
    with pytest.MonkeyPatch.context() as env:
        use_token(env, lab.settings.state_dir, name)
        return main(["promote", run_id, "--alias", "champion", "--workspace", str(lab.workspace)])


async def test_a_promotion_cut_short_after_its_move_is_finished_by_the_retry(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The alias moved, then the model card could not be written (disk full): the retry the error
    asks for writes the card and the run's tags instead of answering "nothing changed"."""
    tracking, failures = lab.ports.tracking, [OSError(28, "No space left on device")]
    write_card = tracking.log_json_artifact

    def disk_full_once(run_id: str, name: str, value: Any) -> None:
        if failures:
            raise failures.pop()
        write_card(run_id, name, value)

    monkeypatch.setattr(tracking, "log_json_artifact", disk_full_once)
    failed, _ = await call(lab, "promote", {"run_id": lab.run_id})
    assert failed and lab.ports.registry.alias_version(MODEL, "candidate") is not None
    assert "promoted" not in tracking.get_run(lab.run_id)["tags"]
    failed, content = await call(lab, "promote", {"run_id": lab.run_id})
    assert not failed and (content["changed"], content["finished"], content["model_card"]) == (False, True, "model_card.json")
    assert "model_card.json" in [f.path for f in lab.client.list_artifacts(lab.run_id)]
    assert tracking.get_run(lab.run_id)["tags"]["promoted"] == "true"
    failed, again = await call(lab, "promote", {"run_id": lab.run_id})
    assert not failed and "finished" not in again
