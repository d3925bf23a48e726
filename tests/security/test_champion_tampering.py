"""Attacks on the champion alias and its approval through the tracking store, and approvals read
against what the approver saw. Real sqlite MLflow registry, real runs (tests/tools/promotion_lab.py),
approvals decided with the real CLI, every call through the real server's enforcement point."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.tools.promotion_lab import MODEL, Lab, call, clone_run
from tests.tools.test_promote import approve, as_candidate, clean_registry, denied_by, gates, lab, with_reproduction  # noqa: F401 - fixtures

pytestmark = pytest.mark.anyio


async def champion(lab: Lab, run_id: str) -> dict[str, Any]:
    """`run_id` made champion the governed way: candidate, then a human's promote, a second human's approval."""
    await as_candidate(lab, run_id)
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.human_approval"}, content
    assert await approve(lab, content["approval_id"]) == 0
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert not failed, content
    return content


def reproduced(lab: Lab) -> str:
    return with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8))


async def test_a_champion_alias_moved_in_the_store_does_not_spare_the_approval_or_the_old_champion(lab: Lab) -> None:
    old = (await champion(lab, reproduced(lab)))["version"]
    newcomer = await as_candidate(lab, reproduced(lab))
    version = lab.ports.registry.version_for_run(MODEL, newcomer)
    lab.client.set_registered_model_alias(MODEL, "champion", version)  # the move outside mlgate
    failed, content = await call(lab, "promote", {"run_id": newcomer, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.human_approval"} and content["approval_created"], content
    approval_id = content["approval_id"]
    assert await approve(lab, approval_id) == 0
    failed, content = await call(lab, "promote", {"run_id": newcomer, "alias": "champion"}, lab.human())
    assert not failed and {"version": old, "from": "champion", "to": "archived"} in content["stage_changes"], content
    assert lab.ports.registry.stage(MODEL, old) == "archived" and lab.ports.registry.events(MODEL, "champion")[-1]["approvals"] == [approval_id]


async def test_a_champion_whose_run_is_gone_fails_the_champion_gate_instead_of_lifting_the_bar(lab: Lab) -> None:
    best = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.99})
    version = lab.ports.registry.register(MODEL, best, lab.ports.tracking.get_run(best)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": best, "by": "alice", "at": "2026-01-01T00:00:00Z"})
    lab.client.delete_run(best)
    lab.client._tracking_client.store._hard_delete_run(best)  # what `mlflow gc` does to a deleted run
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True}, lab.human())
    entry = gates(content)["champion_tolerance"]
    assert failed and entry["status"] == "FAIL" and f"no readable run {best}" in entry["reason"], entry


async def test_an_approval_given_to_replace_one_champion_does_not_replace_the_next(lab: Lab) -> None:
    waiting = await as_candidate(lab, reproduced(lab))
    failed, content = await call(lab, "promote", {"run_id": waiting, "alias": "champion"}, lab.human())
    assert failed and content["approval_status"] == "pending"
    assert await approve(lab, content["approval_id"]) == 0  # approved while there was no champion
    await champion(lab, reproduced(lab))  # another run becomes champion meanwhile
    failed, content = await call(lab, "promote", {"run_id": waiting, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.human_approval"} and content["approval_created"], content


async def test_a_version_registered_outside_mlgate_cannot_go_straight_to_champion(lab: Lab) -> None:
    run_id = reproduced(lab)
    lab.ports.registry.register(MODEL, run_id, lab.ports.tracking.get_run(run_id)["artifact_uri"], {})  # no stage, no history
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and "lifecycle.stage_recorded" in denied_by(content) and "approval_id" not in content, content


async def test_a_denied_promotion_says_the_denial_is_final(lab: Lab) -> None:
    run_id = await as_candidate(lab, reproduced(lab))
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    with pytest.MonkeyPatch.context() as env:
        from server.cli import main
        from tests.credentials import use_token

        use_token(env, lab.settings.state_dir, "bob")
        assert await anyio.to_thread.run_sync(main, ["approvals", "deny", content["approval_id"], "--workspace", str(lab.workspace)]) == 0
    failed, again = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and again["approval_id"] == content["approval_id"] and again["approval_status"] == "denied"
    assert "decisions are final: promote another run" in again["next_step"] and "denied by bob" in gates(again)["human_approval"]["reason"]
