"""get_run through the real server on one real trained run (bwrap children, sqlite MLflow)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.audit import verify
from tests.mcp_calls import strict_json
from tests.tools.runs_lab import RunsLab, build_runs_lab, foreign_run, human, logged_run, trained_result

pytestmark = pytest.mark.anyio
TIER1 = ("git_commit", "git_dirty", "dataset_content_hash", "dataset_schema_hash", "uv_lock_sha256", "feature_pipeline_hash", "config_hash", "standards_sha256", "seed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> RunsLab:
    return build_runs_lab(tmp_path_factory.mktemp("get-run"))


@pytest.fixture(scope="module")
def trained_call(lab: RunsLab) -> dict[str, Any]:
    return trained_result(lab)


@pytest.fixture(scope="module")
def trained(trained_call: dict[str, Any]) -> str:
    return trained_call["run_id"]


async def got(lab: RunsLab, run_id: str) -> dict[str, Any]:
    is_error, content = await lab.call("get_run", {"run_id": run_id})
    assert not is_error, content
    return content


async def test_a_trained_run_shows_provenance_config_and_metrics_with_intervals(lab: RunsLab, trained: str) -> None:
    run = await got(lab, trained)
    assert run["run_id"] == trained and run["status"] == "FINISHED" and run["end_reason"] is None
    assert all(run["provenance"].get(key) is not None for key in TIER1) and run["provenance"]["git_dirty"] is False
    assert run["config"]["model"]["type"] == "logistic_regression" and run["config"]["experiment"]["seed"] == 42
    assert run["reasoning"]["hypothesis_category"] == "baseline"
    roc = run["metrics"]["roc_auc"]
    assert roc["ci95"]["low"] <= roc["value"] <= roc["ci95"]["high"]
    assert set(run["baselines"]) == {"logistic_regression", "class_prior"} and "roc_auc" in run["baselines"]["class_prior"]
    assert 0 < run["cv_metrics"]["roc_auc"] <= 1 and run["data_shape"]["n_rows"] == 300


async def test_a_run_reads_with_the_figures_its_run_experiment_result_gave(lab: RunsLab, trained_call: dict[str, Any]) -> None:
    run = await got(lab, trained_call["run_id"])
    assert {name: run["metrics"][name] for name in trained_call["metrics"]} == trained_call["metrics"]
    assert run["primary_metric"]["value"] == trained_call["metrics"]["roc_auc"]["value"]
    shown = [run["cv_metrics"], *run["baselines"].values(), run["timings"]]
    assert all(value == round(value, 6) for figures in shown for value in figures.values())
    assert run["data_shape"] == {"n_rows": 300, "n_columns": 11, "n_features": 4} and all(type(n) is int for n in run["data_shape"].values())


async def test_a_trained_run_shows_its_comparison_gate_receipt_tags_and_artifacts(lab: RunsLab, trained: str) -> None:
    run = await got(lab, trained)
    assert run["comparison"]["outcome"] == "neutral" and run["comparison"]["metric"] == "roc_auc" and "rule" in run["comparison"]
    assert {g["gate"] for g in run["gate_receipt"]["gates"]} >= {"min_primary_metric", "min_lift_over_baseline"}
    assert isinstance(run["gate_receipt"]["passed"], bool)
    assert run["tags"]["client_name"] == "demo-bank" and run["tags"]["project_name"] == "credit-default" and run["tags"]["transport"] == "memory"
    assert {"evaluation_report.json", "gate_receipt.json", "bundle_manifest.json", "test_predictions.parquet"} <= set(run["artifacts"])
    assert any(path.startswith("model/") for path in run["artifacts"])


async def test_the_view_carries_no_data_rows(lab: RunsLab, trained: str) -> None:
    text = json.dumps(await got(lab, trained))
    assert "salaried" not in text.lower() and "@" not in text


async def test_a_failed_run_shows_why_it_ended(lab: RunsLab) -> None:
    run = await got(lab, logged_run(lab, status="FAILED"))
    assert run["status"] == "FAILED" and run["end_reason"] == "sandbox.child_error: boom" and run["metrics"] == {}


async def test_a_secret_in_a_param_never_comes_back(lab: RunsLab) -> None:
    token = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    run_id = logged_run(lab, extra_params={"notes": f"token {token}", "api_key": token})
    run = await got(lab, run_id)
    assert token not in json.dumps(run) and set(run["redacted_keys"]) >= {"api_key"}


async def test_a_run_of_another_project_is_not_found_here(lab: RunsLab) -> None:
    run_id = foreign_run(lab)
    is_error, content = await lab.call("get_run", {"run_id": run_id})
    assert is_error and content["rule_id"] == "runs.same_project" and f"no run {run_id}" in content["reason"]
    assert "list_runs" in content["remediation"] and "metrics" not in content


async def test_an_unknown_run_id_is_not_found(lab: RunsLab) -> None:
    is_error, content = await lab.call("get_run", {"run_id": "0" * 32})
    assert is_error and content["rule_id"] == "tracking.run_not_found"


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "A" * 32, "0" * 31, "0" * 33, 7])
async def test_a_malformed_run_id_is_refused_before_mlflow_is_asked(lab: RunsLab, run_id: Any) -> None:
    is_error, content = await lab.call("get_run", {"run_id": run_id})
    assert is_error and content["rule_id"] == "input.schema"


async def test_humans_read_runs_too_and_the_read_is_audited_with_the_run_id(lab: RunsLab, trained: str) -> None:
    is_error, content = await lab.call("get_run", {"run_id": trained}, human(lab))
    assert not is_error and content["run_id"] == trained
    outcome = lab.ports.audit.tail(1)[0]
    assert outcome["status"] == "ok" and outcome["principal"] == "alice" and outcome["run_id"] == trained and outcome["commit"] == content["commit"]
    assert verify(lab.settings.audit_path).ok


async def test_a_run_with_an_undefined_metric_is_answered_in_strict_json_with_the_metric_null(lab: RunsLab) -> None:
    run_id = logged_run(lab)
    lab.ports.tracking.log_metrics(run_id, {"val_f1": float("nan")})  # e.g. F1 of a fold without a positive prediction
    async with Client(build_server(lab.settings, lab.ports)) as client:
        result = await client.call_tool("get_run", {"run_id": run_id})
    assert not result.is_error
    assert strict_json(result.content[0].text) == result.structured_content
    assert result.structured_content["metrics"]["f1"]["value"] is None
