"""Attacks on a run's metrics by an agent with its own shell: the MLflow sqlite store lives in the
state directory, so the agent can raise a run's sealed test figure there, or copy a run with better
figures into the store by hand, and then ask promote to register it.

A real workspace, a real sandboxed run with its PR (tests/tools/promotion_lab.py), the store edited
with sqlite3 as the agent would, promote called through a real MCP client.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from server.audit.chain import AuditChain
from server.audit.records import CHAIN_FIELDS
from server.audit.run_metrics import KIND, RunMetricsLedger
from server.cli import main
from tools.provenance import parse_run_files, run_files_param, sha256_bytes
from tools.sealed import COMPUTED_BY_RUN
from tests.tools.promotion_lab import MODEL, Lab, build_lab, call, clone_run, reset_registry

pytestmark = pytest.mark.anyio
LEGACY_FIELDS = ("kind", "names", "metrics_sha256", "artifacts", "artifacts_sha256")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("run-metrics"))


@pytest.fixture(autouse=True)
def clean_registry(lab: Lab) -> None:
    reset_registry(lab)


def edit_metric(lab: Lab, run_id: str, name: str, value: float) -> None:
    """The attack: rewrite a metric in MLflow's sqlite database (history and latest value)."""
    with sqlite3.connect(lab.settings.state_dir / "mlflow.db") as db:
        for table in ("metrics", "latest_metrics"):
            db.execute(f"UPDATE {table} SET value = ? WHERE run_uuid = ? AND key = ?", (value, run_id, name))  # noqa: S608 - fixed table names


def edit_param(lab: Lab, run_id: str, name: str, value: str) -> None:
    """The attack on a run's provenance: rewrite a param in MLflow's sqlite database."""
    with sqlite3.connect(lab.settings.state_dir / "mlflow.db") as db:
        assert db.execute("UPDATE params SET value = ? WHERE run_uuid = ? AND key = ?", (value, run_id, name)).rowcount == 1


def versions(lab: Lab) -> list[object]:
    return lab.client.search_model_versions(f"name='{MODEL}'")


async def test_a_finished_run_s_metrics_are_recorded_in_the_audit_chain(lab: Lab) -> None:
    recorded = lab.ports.run_metrics.recorded(lab.run_id)
    assert recorded is not None and recorded["kind"] == KIND and "test_roc_auc" in recorded["names"]
    assert lab.ports.run_metrics.problem(lab.ports.tracking.get_run(lab.run_id)) is None
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
    assert not failed, content


async def test_a_test_metric_raised_in_the_tracking_store_is_refused_at_promotion(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)  # a run mlgate vouches for, edited below
    failed, content = await call(lab, "promote", {"run_id": run_id, "dry_run": True})
    assert not failed, content
    edit_metric(lab, run_id, "test_roc_auc", 0.999)
    assert lab.ports.tracking.get_run(run_id)["metrics"]["test_roc_auc"] == 0.999
    failed, content = await call(lab, "promote", {"run_id": run_id})
    assert failed and content["rule_id"] == "integrity.run_metrics", content
    assert "not the ones the audit chain recorded" in content["reason"]
    assert versions(lab) == []


async def test_a_metric_added_to_a_finished_run_is_refused_at_promotion(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)
    assert "test_recall_at_top_decile" not in lab.ports.tracking.get_run(run_id)["metrics"]
    lab.client.log_metric(run_id, "test_recall_at_top_decile", 0.9)
    failed, content = await call(lab, "promote", {"run_id": run_id})
    assert failed and content["rule_id"] == "integrity.run_metrics" and "added" in content["reason"], content
    assert versions(lab) == []


async def test_a_run_copied_into_the_tracking_store_by_hand_is_refused_at_promotion(lab: Lab) -> None:
    forged = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.999}, vouch=False)  # MlflowClient calls, as the agent makes them
    failed, content = await call(lab, "promote", {"run_id": forged})
    assert failed and content["rule_id"] == "integrity.run_metrics", content
    assert "holds no record of its metrics" in content["reason"]
    assert versions(lab) == []


async def test_a_param_edited_in_the_tracking_store_is_refused_at_promotion(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)
    failed, content = await call(lab, "promote", {"run_id": run_id, "dry_run": True})
    assert not failed, content
    edit_param(lab, run_id, "dataset_content_hash", lab.spare_hash)  # the attack: the run now names another registered data version
    failed, content = await call(lab, "promote", {"run_id": run_id})
    assert failed and content["rule_id"] == "integrity.run_metrics", content
    assert "its params" in content["reason"] and "not the ones the audit chain recorded" in content["reason"]
    assert versions(lab) == []


async def test_a_run_whose_commit_was_edited_in_the_tracking_store_gets_no_pr(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)
    failed, content = await call(lab, "open_pr", {"run_id": run_id, "title": "Tuned for the lab", "dry_run": True})
    assert not failed, content
    # the attack: the run's figures cited for other code, the hashes of the files it used made to match
    used = parse_run_files(lab.ports.tracking.get_run(run_id)["params"]["run_files_sha256"])
    other = {path: sha256_bytes(lab.repo.run("show", f"{lab.no_pr_commit}:{path}").stdout) for path in used}
    edit_param(lab, run_id, "git_commit", lab.no_pr_commit)
    edit_param(lab, run_id, "run_files_sha256", run_files_param(other))
    failed, content = await call(lab, "open_pr", {"run_id": run_id, "title": "Tuned for the lab"})
    assert failed and content["rule_id"] == "integrity.run_metrics" and "its params" in content["reason"], content
    assert "open a PR for a run as run_experiment" in content["remediation"]


async def test_a_param_added_to_a_finished_run_is_refused_at_promotion(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)
    lab.client.log_param(run_id, "reviewed_by", "risk-committee")
    failed, content = await call(lab, "promote", {"run_id": run_id})
    assert failed and content["rule_id"] == "integrity.run_metrics" and "params were added" in content["reason"], content
    assert versions(lab) == []


async def test_a_run_chained_before_params_were_keeps_its_metrics_checked_and_its_params_unchecked(lab: Lab) -> None:
    # the record an older server chained for a run: metrics and artifacts, no params fields (a
    # vouched clone's record serves: a clone holds the same metrics and model files)
    template = lab.ports.run_metrics.recorded(clone_run(lab, lab.run_id))
    older = clone_run(lab, lab.run_id, vouch=False)
    lab.ports.audit.append({**{k: template[k] for k in LEGACY_FIELDS}, "run_id": older})
    edit_param(lab, older, "dataset_content_hash", "0" * 64)
    failed, content = await call(lab, "promote", {"run_id": older, "dry_run": True})
    assert not failed or content["rule_id"] != "integrity.run_metrics", content
    edit_metric(lab, older, "test_roc_auc", 0.999)
    failed, content = await call(lab, "promote", {"run_id": older, "dry_run": True})
    assert failed and content["rule_id"] == "integrity.run_metrics" and "its metrics" in content["reason"], content


def verify(lab: Lab, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    lab.ports.audit.sync()
    capsys.readouterr()
    return main(["audit", "verify", "--workspace", str(lab.workspace)]), capsys.readouterr().out


def test_audit_verify_reports_an_edited_metric_and_a_run_copied_in_by_hand(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    edited = clone_run(lab, lab.run_id)
    copied = clone_run(lab, lab.run_id, vouch=False)  # its tags still name this chain's witnesses
    untagged = clone_run(lab, lab.run_id, vouch=False)
    for tag in ("mlgate.audit_witness", "mlgate.audit_witness_end"):
        lab.client.delete_tag(untagged, tag)  # a copy that names no witness of when it ended
    code, out = verify(lab, capsys)
    assert code == 1 and f"RUN METRICS UNRECORDED: run {copied}" in out and edited not in out
    assert f"RUN METRICS UNRECORDED: run {untagged}" in out
    edit_metric(lab, edited, "val_roc_auc", 0.999)
    code, out = verify(lab, capsys)
    assert code == 1 and f"RUN METRICS EDITED: run {edited}" in out
    assert lab.run_id not in out


def test_audit_verify_reports_an_edited_param(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    edited = clone_run(lab, lab.run_id)
    code, out = verify(lab, capsys)
    assert edited not in out
    edit_param(lab, edited, "git_commit", "f" * 40)
    code, out = verify(lab, capsys)
    assert code == 1 and f"RUN METRICS EDITED: run {edited}: its params" in out


def artifact_file(lab: Lab, run_id: str, relpath: str) -> Path:
    """Where the sqlite store keeps a run's artifact: a plain file in the state directory."""
    root = Path(lab.client.get_run(run_id).info.artifact_uri.removeprefix("file://"))
    path = root / relpath
    assert path.is_file(), sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    return path


async def test_a_model_file_swapped_in_the_run_s_artifacts_is_refused_at_promotion(lab: Lab) -> None:
    run_id = clone_run(lab, lab.run_id)
    failed, content = await call(lab, "promote", {"run_id": run_id, "dry_run": True})
    assert not failed, content
    model = artifact_file(lab, run_id, "model/model.json")
    model.write_bytes(model.read_bytes() + b" ")  # the attack: another model than the one evaluated
    failed, content = await call(lab, "promote", {"run_id": run_id})
    assert failed and content["rule_id"] == "integrity.run_metrics" and "artifacts" in content["reason"], content
    assert versions(lab) == []


async def test_a_run_s_test_predictions_edited_in_its_artifacts_are_refused_at_promotion(lab: Lab) -> None:
    predictions = artifact_file(lab, lab.run_id, "test_predictions.parquet")
    original = predictions.read_bytes()
    try:
        predictions.write_bytes(original + b"\0")  # what the champion comparison reads
        failed, content = await call(lab, "promote", {"run_id": lab.run_id})
        assert failed and content["rule_id"] == "integrity.run_metrics" and "artifacts" in content["reason"], content
        assert versions(lab) == []
    finally:
        predictions.write_bytes(original)


def make_champion(lab: Lab, run_id: str) -> None:
    version = lab.ports.registry.register(MODEL, run_id, lab.ports.tracking.get_run(run_id)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": run_id, "by": "test"})


async def test_a_champion_s_test_metric_lowered_in_the_tracking_store_is_refused_at_promotion(lab: Lab) -> None:
    champion = clone_run(lab, lab.run_id)
    make_champion(lab, champion)
    edit_metric(lab, champion, "test_roc_auc", 0.5)  # the attack: a weaker candidate now looks close enough
    failed, content = await call(lab, "promote", {"run_id": lab.run_id})
    assert failed and content["rule_id"] == "integrity.run_metrics" and champion in content["reason"], content


@contextmanager
def chained_after(lab: Lab, tmp_path: Path, evaluated: str) -> Iterator[None]:
    """The server reads a chain an older mlgate began: it evaluated `evaluated` (its test-set query)
    and chained no run_metrics; the records of the lab's runs follow, as an upgraded server adds them."""
    chain = AuditChain(tmp_path / "audit.jsonl")
    chain.append({"kind": "test_query", "dataset_hash": lab.dataset_hash, "purpose": COMPUTED_BY_RUN, "run_id": evaluated, "principal": "claude", "test_queries": 1})
    for record in lab.ports.run_metrics.all().values():
        chain.append({k: v for k, v in record.items() if k not in CHAIN_FIELDS})
    chain.close()
    ledger, lab.ports.run_metrics = lab.ports.run_metrics, RunMetricsLedger(chain.path, None, lab.ports.tracking)
    try:
        yield
    finally:
        lab.ports.run_metrics = ledger


async def test_a_champion_promoted_before_metrics_were_chained_still_lets_candidates_through(lab: Lab, tmp_path: Path) -> None:
    older = clone_run(lab, lab.run_id, vouch=False)  # no run_metrics record: an older promotion
    make_champion(lab, older)
    with chained_after(lab, tmp_path, evaluated=older):
        failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
    assert not failed, content


async def test_a_champion_copied_into_the_tracking_store_by_hand_is_refused_at_promotion(lab: Lab) -> None:
    make_champion(lab, clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.5}, vouch=False))  # a weak champion any candidate beats
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
    assert failed and content["rule_id"] == "integrity.run_metrics" and "holds no record of its metrics" in content["reason"], content


async def test_a_server_without_a_record_of_run_metrics_refuses_promotion(lab: Lab) -> None:
    ledger, lab.ports.run_metrics = lab.ports.run_metrics, None  # a server built without the port fails closed
    try:
        failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
        assert failed and content["rule_id"] == "integrity.run_metrics" and "keeps no record" in content["reason"], content
    finally:
        lab.ports.run_metrics = ledger
    assert versions(lab) == []
