"""The champion's model scored on a candidate's test rows when the candidate runs on another data
version, through the real server: real runs in bwrap, the MLflow registry on sqlite, promote's
receipt read by a human."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from server.commands.data import import_files
from server.demo_data import write_credit_csv
from tests.tools.promotion_lab import MODEL, REASONING, Lab, build_lab, call, clone_run, reset_registry
from tools.champion_pairing import CHAMPION_COMPARISON, CHAMPION_PREDICTIONS
from tools.provenance import feature_pipeline_hash
from tools.run_pins import rebuild_config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("champion"))


@pytest.fixture(scope="module")
def next_version(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A later data version of the same columns (other rows, other test window)."""
    source = write_credit_csv(tmp_path_factory.mktemp("next") / "credit_next.csv", rows=400, seed=11)
    return import_files(lab.workspace, [source]).added.content_hash


@pytest.fixture(autouse=True)
def clean_registry(lab: Lab) -> None:
    reset_registry(lab)


def crown(lab: Lab, run_id: str) -> None:
    version = lab.ports.registry.register(MODEL, run_id, lab.ports.tracking.get_run(run_id)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": run_id, "by": "test"})


async def run_on(lab: Lab, dataset: str) -> dict[str, Any]:
    failed, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": {"data.dataset": dataset}})
    assert not failed, content
    return content


def artifact(lab: Lab, run_id: str, name: str, scratch: Path) -> Path:
    return Path(lab.client.download_artifacts(run_id, name, str(scratch)))


def champion_gate(content: dict[str, Any]) -> dict[str, Any]:
    return {g["gate"]: g for g in content["gate_receipt"]["gates"]}["champion_tolerance"]


async def test_a_run_on_a_new_data_version_holds_the_champions_scores_of_its_test_rows(lab: Lab, next_version: str, tmp_path: Path) -> None:
    crown(lab, lab.run_id)
    content = await run_on(lab, next_version)
    assert content["champion_comparison"] == {"champion_run_id": lab.run_id, "champion_version": "1", "scored": True, "reason": None}
    assert CHAMPION_PREDICTIONS in content["artifacts"] and CHAMPION_COMPARISON in content["artifacts"]
    mine = pd.read_parquet(artifact(lab, content["run_id"], "test_predictions.parquet", tmp_path))
    theirs = pd.read_parquet(artifact(lab, content["run_id"], CHAMPION_PREDICTIONS, tmp_path))
    assert theirs["__row_id__"].tolist() == mine["__row_id__"].tolist() and theirs["label"].tolist() == mine["label"].tolist()
    assert theirs["score"].between(0, 1).all() and not theirs["score"].equals(mine["score"])
    assert lab.ports.run_metrics.problem(lab.ports.tracking.get_run(content["run_id"])) is None  # the new artifacts are chained
    stage = lab.settings.state_dir / "runs" / content["run_id"] / "champion" / "inputs"
    assert sorted(p.name for p in stage.iterdir()) == ["features.py", "spec.json"]  # the rows and the model copy are released


async def test_promote_pairs_the_candidate_with_the_champion_on_the_candidates_test_rows(lab: Lab, next_version: str) -> None:
    crown(lab, lab.run_id)
    run_id = (await run_on(lab, next_version))["run_id"]
    _, content = await call(lab, "promote", {"run_id": run_id, "dry_run": True}, lab.human())
    entry = champion_gate(content)
    assert "paired bootstrap on the same rows" in entry["reason"] and "not a paired comparison" not in entry["reason"], entry
    assert f"the champion's model (run {lab.run_id[:12]}) scored this run's test rows" in entry["reason"]
    assert set(entry["observed"]) == {"improvement", "lower_bound", "confidence"}
    _, agent = await call(lab, "promote", {"run_id": run_id, "dry_run": True})
    assert champion_gate(agent)["observed"] is None  # an agent still learns PASS or FAIL only


async def test_a_candidate_scored_by_an_earlier_champion_is_compared_by_point_estimates_and_told_to_run_again(lab: Lab, next_version: str) -> None:
    crown(lab, lab.run_id)
    run_id = (await run_on(lab, next_version))["run_id"]
    reset_registry(lab)
    crown(lab, clone_run(lab, lab.run_id))  # another champion since the run
    _, content = await call(lab, "promote", {"run_id": run_id, "dry_run": True}, lab.human())
    reason = champion_gate(content)["reason"]
    assert "not a paired comparison on the same rows" in reason and "scored by an earlier champion" in reason, reason


async def test_a_champion_whose_columns_the_new_data_lacks_is_not_scored_and_the_run_says_why(lab: Lab, tmp_path: Path) -> None:
    frame = pd.read_csv(write_credit_csv(tmp_path / "src.csv", rows=400, seed=12))
    dropped = "debt_ratio"
    frame.drop(columns=[dropped]).to_csv(tmp_path / "narrow.csv", index=False)
    narrow = import_files(lab.workspace, [tmp_path / "narrow.csv"]).added.content_hash
    crown(lab, lab.run_id)
    content = await run_on(lab, narrow)
    comparison = content["champion_comparison"]
    assert comparison["scored"] is False and f"lacks its feature columns {dropped}" in comparison["reason"], comparison
    _, receipt = await call(lab, "promote", {"run_id": content["run_id"], "dry_run": True}, lab.human())
    assert "could not score its test rows: this run's dataset lacks" in champion_gate(receipt)["reason"]


async def test_a_champion_whose_model_files_were_edited_is_never_scored(lab: Lab, next_version: str, tmp_path: Path) -> None:
    forged = clone_run(lab, lab.run_id)
    transform = artifact(lab, forged, "model/feature_transform.json", tmp_path)
    document = json.loads(transform.read_text())
    transform.write_text(json.dumps({**document, "note": "edited"}))
    lab.client.log_artifact(forged, str(transform), "model")
    crown(lab, forged)
    comparison = (await run_on(lab, next_version))["champion_comparison"]
    assert comparison["scored"] is False and "not as the audit chain recorded it" in comparison["reason"], comparison


BLANKING = b"import pandas as pd\n\n\ndef build_features(frame):\n    return frame * 0\n"


def committed_features(lab: Lab, source: bytes) -> str:
    """A commit on a branch whose src/features.py is `source`; the working tree back on main."""
    lab.repo.run("checkout", "-q", "-B", "agent/blank", "main")
    (lab.repo.path / "src/features.py").write_bytes(source)
    commit = lab.repo.commit_all("blank every feature")
    lab.repo.run("checkout", "-q", "main")
    return commit


async def test_a_champion_pointed_at_another_features_py_in_the_tracking_store_is_never_scored(lab: Lab, next_version: str) -> None:
    # the attack: the champion's git_commit and feature_pipeline_hash edited in the store to name a
    # features.py that blanks every column, so its scores are noise and any candidate beats it
    champion = clone_run(lab, lab.run_id)
    params = lab.ports.tracking.get_run(champion)["params"]
    forged = {"git_commit": committed_features(lab, BLANKING),
              "feature_pipeline_hash": feature_pipeline_hash(BLANKING, rebuild_config(params)["features"])}  # fmt: skip
    with sqlite3.connect(lab.settings.state_dir / "mlflow.db") as db:
        for name, value in forged.items():
            db.execute("UPDATE params SET value = ? WHERE run_uuid = ? AND key = ?", (value, champion, name))
    crown(lab, champion)
    comparison = (await run_on(lab, next_version))["champion_comparison"]
    assert comparison["scored"] is False and "its params" in comparison["reason"], comparison


async def test_a_run_on_the_champions_own_rows_is_not_rescored(lab: Lab) -> None:
    crown(lab, lab.run_id)
    content = await run_on(lab, lab.dataset_hash)
    assert "champion_comparison" not in content and CHAMPION_PREDICTIONS not in content["artifacts"]


async def test_without_a_champion_nothing_is_scored(lab: Lab, next_version: str) -> None:
    content = await run_on(lab, next_version)
    assert "champion_comparison" not in content and not (lab.settings.state_dir / "runs" / content["run_id"] / "champion").exists()
