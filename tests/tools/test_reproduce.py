"""reproduce through the real server: the run's files read from its commit in a real git repository,
real bwrap re-runs, the CAS re-hashed, the verdict recorded on the original MLflow run."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from tests.tools.promotion_lab import Lab, build_lab, call, clone_run, foreign_clone, tampered
from tools.sealed import SEALED_NOTE

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("reproduce"))


def runs(lab: Lab) -> list[dict[str, Any]]:
    tracking = lab.ports.tracking
    return tracking.search_runs([tracking.get_or_create_experiment("demo-bank/credit-default")], max_results=1000)


def pins(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["pin"]: p for p in content["pins"]}


async def test_reproducing_an_unchanged_run_passes_and_is_recorded(lab: Lab) -> None:
    assert (lab.workspace / "src/features.py").read_bytes() != lab.repo.show(lab.ports.tracking.get_run(lab.run_id)["params"]["git_commit"], "src/features.py")
    failed, content = await call(lab, "reproduce", {"run_id": lab.run_id})
    assert not failed, content
    assert content["reproduced"] is True and content["max_difference"] == 0.0 and content["environment_matches"] is True
    assert [s["seed"] for s in content["seed_runs"]] == [43, 44] and content["seed_variance_roc_auc"] == SEALED_NOTE  # measured on the test rows
    assert all(set(s) == {"run_id", "seed", "val_roc_auc"} for s in content["seed_runs"])  # seed runs' test figures stay sealed
    # shown as every result shows a figure (6 decimals), while MLflow keeps the seed run's own value
    assert all(s["val_roc_auc"] == round(lab.ports.tracking.get_run(s["run_id"])["metrics"]["val_roc_auc"], 6) for s in content["seed_runs"])
    original, rerun = lab.ports.tracking.get_run(lab.run_id), lab.ports.tracking.get_run(content["reproduction_run_id"])
    for pin in ("git_commit", "feature_pipeline_hash", "config_hash", "dataset_content_hash", "seed"):
        assert rerun["params"][pin] == original["params"][pin], pin
    assert rerun["tags"]["mlgate.reproduction_of"] == lab.run_id and rerun["params"]["git_dirty"] == "false"
    assert (rerun["params"]["reproduction_of"], rerun["params"]["reproduction_kind"]) == (lab.run_id, "same_seed")
    used = [json.loads(run["params"]["run_files_sha256"])["src/features.py"] for run in (original, rerun)]
    assert used[0] == used[1]  # the re-run used the features.py bytes the original recorded, read from its commit
    assert original["tags"]["reproduced"] == "true" and original["tags"]["mlgate.reproduction_run_id"] == rerun["run_id"]
    assert original["tags"]["mlgate.seed_run_ids"] == ",".join(s["run_id"] for s in content["seed_runs"])
    assert original["metrics"]["seed_variance_roc_auc"] >= 0.0
    assert rerun["tags"]["mlgate.run_kind"] == "reproduction" and original["tags"]["mlgate.run_kind"] == "experiment"
    assert all(lab.ports.tracking.get_run(s["run_id"])["tags"]["mlgate.run_kind"] == "reproduction" for s in content["seed_runs"])
    assert all(lab.ports.tracking.get_run(s["run_id"])["params"]["reproduction_kind"] == "seed" for s in content["seed_runs"])


async def test_the_seed_variance_is_sealed_for_agents_and_shown_to_humans(lab: Lab) -> None:
    variance = lab.ports.tracking.get_run(lab.run_id)["metrics"].get("seed_variance_roc_auc")
    assert variance is not None, "the reproduction test above measured it"
    failed, agent_view = await call(lab, "get_run", {"run_id": lab.run_id})
    assert not failed and "seed_variance_roc_auc" not in json.dumps(agent_view), agent_view
    failed, human_view = await call(lab, "get_run", {"run_id": lab.run_id}, lab.human())
    assert not failed and human_view["test_set"]["seed_variance"] == {"roc_auc": pytest.approx(variance)}, human_view["test_set"]


async def test_the_worktree_is_gone_after_a_reproduction(lab: Lab) -> None:
    await call(lab, "reproduce", {"run_id": lab.run_id, "dry_run": True})
    worktrees = lab.settings.state_dir / "worktrees"
    assert not worktrees.exists() or list(worktrees.iterdir()) == []
    assert len(lab.repo.text("worktree", "list", "--porcelain").split("\n\n")) == 1


async def test_a_tampered_dataset_fails_clearly_and_is_recorded(lab: Lab) -> None:
    before = len(runs(lab))
    with tampered(lab, lab.dataset_hash):
        failed, content = await call(lab, "reproduce", {"run_id": lab.run_id})
    assert failed and content["rule_id"] == "reproduce.pins_intact" and "dataset" in content["reason"]
    assert pins(content)["dataset"]["ok"] is False and content["reproduced"] is False
    tags = lab.ports.tracking.get_run(lab.run_id)["tags"]
    assert tags["reproduced"] == "false" and tags["mlgate.reproduction_failure"].startswith("dataset:")
    assert len(runs(lab)) == before


async def test_a_run_whose_rerun_measures_other_metrics_is_not_reproduced(lab: Lab) -> None:
    inflated = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.99})
    failed, content = await call(lab, "reproduce", {"run_id": inflated})
    assert not failed and content["reproduced"] is False and content["seed_runs"] == []
    assert content["differences"]["test_roc_auc"] > 0.1 and content["differences"]["test_pr_auc"] == 0.0
    assert lab.ports.tracking.get_run(inflated)["tags"]["reproduced"] == "false"


async def test_dry_run_restores_every_pin_and_trains_nothing(lab: Lab) -> None:
    before = len(runs(lab))
    failed, content = await call(lab, "reproduce", {"run_id": lab.run_id, "dry_run": True})
    assert not failed and content["dry_run"] is True
    assert set(pins(content)) == {"audit_record", "commit", "config", "features", "dataset", "feature_columns", "standards"}
    assert all(p["ok"] for p in content["pins"]) and len(runs(lab)) == before


@pytest.mark.parametrize(
    ("params", "pin"),
    [({"feature_pipeline_hash": "0" * 64}, "features"), ({"git_commit": "f" * 40}, "commit"), ({"config_hash": "0" * 64}, "config"), ({"standards_sha256": "0" * 64}, "standards")],
)
async def test_a_pin_that_cannot_be_restored_is_denied(lab: Lab, params: dict[str, str], pin: str) -> None:
    run_id = clone_run(lab, lab.run_id, params=params)
    failed, content = await call(lab, "reproduce", {"run_id": run_id})
    assert failed and content["rule_id"] == "reproduce.pins_intact"
    assert pins(content)[pin]["ok"] is False and pin in content["reason"]


async def test_a_run_whose_params_were_edited_after_it_finished_is_not_reproduced(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)
    with sqlite3.connect(lab.settings.state_dir / "mlflow.db") as db:  # the agent's edit: another seed pinned
        db.execute("UPDATE params SET value = '7' WHERE run_uuid = ? AND key = 'config.experiment.seed'", (run_id,))
    failed, content = await call(lab, "reproduce", {"run_id": run_id})
    assert failed and content["rule_id"] == "reproduce.pins_intact" and "audit_record" in content["reason"], content
    assert "its params" in pins(content)["audit_record"]["reason"] and content["reproduced"] is False


async def test_a_run_copied_into_the_store_by_hand_is_not_reproduced(lab: Lab) -> None:
    failed, content = await call(lab, "reproduce", {"run_id": clone_run(lab, lab.run_id, vouch=False)})
    assert failed and content["rule_id"] == "reproduce.pins_intact" and "audit_record" in content["reason"], content
    assert "holds no record" in pins(content)["audit_record"]["reason"] and content["reproduced"] is False


async def test_a_run_that_did_not_finish_is_not_reproduced(lab: Lab) -> None:
    failed, content = await call(lab, "reproduce", {"run_id": clone_run(lab, lab.run_id, status="FAILED")})
    assert failed and content["rule_id"] == "reproduce.run_finished"


async def test_a_run_of_another_project_in_the_store_is_not_found_and_never_marked(lab: Lab) -> None:
    """A tracking store shared by projects: this project's agent neither checks the pins of another
    project's run nor records a failed reproduction on it."""
    intact, broken = foreign_clone(lab, lab.run_id), foreign_clone(lab, lab.run_id, params={"git_commit": "0" * 40})
    for run_id, dry_run in ((intact, True), (broken, False)):
        failed, content = await call(lab, "reproduce", {"run_id": run_id, "dry_run": dry_run})
        assert failed and content["rule_id"] == "runs.same_project" and f"no run {run_id}" in content["reason"], content
        assert "pins" not in content and "list_runs" in content["remediation"]
    assert "reproduced" not in lab.ports.tracking.get_run(broken)["tags"]
