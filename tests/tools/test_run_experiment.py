"""run_experiment end to end: real workspace, real CAS, real bwrap children, real sqlite MLflow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mcp import Client

from server.app import build_server
from server.audit import verify
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import build_ports
from server.settings import load_settings
from tools import experiment_report

pytestmark = pytest.mark.anyio
TIER1 = ("git_commit", "git_dirty", "dataset_content_hash", "dataset_schema_hash", "uv_lock_sha256", "feature_pipeline_hash", "config_hash", "standards_sha256", "seed")
REASONING = {"hypothesis_category": "baseline", "change_description": "Baseline xgboost on the governed credit data.", "expected_effect": "A reference roc_auc for later changes."}


def set_config(workspace: Path, **paths: Any) -> None:
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    for dotted, value in paths.items():
        *parents, leaf = dotted.split("__")
        node = document
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture
def governed(workspace: Path, tmp_path: Path) -> dict[str, Any]:
    from server.commands.data import import_files

    content_hash = import_files(workspace, [write_credit_csv(tmp_path / "credit.csv", rows=600)]).added.content_hash
    set_config(workspace, data__dataset=content_hash, model__params={"n_estimators": 20, "max_depth": 3}, evaluation__bootstrap_samples=50)
    GitRepo(workspace).commit_all("use the credit dataset")
    settings = load_settings(workspace, transport="memory")
    return {"workspace": workspace, "settings": settings, "ports": build_ports(settings), "hash": content_hash}


async def call(governed: dict[str, Any], arguments: dict[str, Any]) -> Any:
    async with Client(build_server(governed["settings"], governed["ports"])) as client:
        return await client.call_tool("run_experiment", arguments)


async def test_run_returns_metrics_with_intervals_baselines_and_a_gate_receipt(governed: dict[str, Any]) -> None:
    result = await call(governed, {"reasoning": REASONING})
    assert not result.is_error, result.structured_content
    content = result.structured_content
    assert content["status"] == "FINISHED" and content["dirty"] is False and "dirty_files" not in content
    roc = content["metrics"]["roc_auc"]
    assert 0.5 < roc["value"] <= 1 and roc["ci95"]["low"] <= roc["value"] <= roc["ci95"]["high"]
    assert set(content["baseline_metrics"]) == {"logistic_regression", "class_prior"}
    assert content["outcome"] == "neutral" and content["gate_receipt"]["gates"]


async def test_every_tier1_field_is_logged_on_a_successful_run(governed: dict[str, Any]) -> None:
    content = (await call(governed, {"reasoning": REASONING})).structured_content
    run = governed["ports"].tracking.get_run(content["run_id"])
    assert run["status"] == "FINISHED"
    assert all(run["params"].get(key) for key in TIER1), sorted(run["params"])
    assert run["params"]["dataset_content_hash"] == governed["hash"] and run["params"]["git_dirty"] == "false"
    assert {"client_name", "project_name", "principal", "transport"} <= set(run["tags"])
    assert {"evaluation_report.json", "gate_receipt.json", "drift_baseline.json", "bundle_manifest.json", "test_predictions.parquet"} <= set(content["artifacts"])


def keep_inputs(governed: dict[str, Any], into: Path) -> None:
    """Copies each stage's inputs/ as the child got them (the run deletes its row copies when it ends)."""
    rundirs = governed["ports"].rundirs
    write = rundirs.write_inputs

    def write_and_keep(stage_dir: Path, *args: Any) -> None:
        write(stage_dir, *args)
        shutil.copytree(stage_dir / "inputs", into / stage_dir.name)

    rundirs.write_inputs = write_and_keep


async def test_evaluation_rows_given_to_the_child_carry_no_labels(governed: dict[str, Any], tmp_path: Path) -> None:
    keep_inputs(governed, tmp_path / "given")
    await call(governed, {"reasoning": REASONING})
    stages = sorted((tmp_path / "given").iterdir())
    assert [s.name for s in stages] == ["final", "fold-0"]
    for stage in stages:
        evaluation = pd.read_parquet(stage / "eval.parquet")
        train = pd.read_parquet(stage / "train.parquet")
        assert "__label__" not in evaluation.columns and "default" not in evaluation.columns
        assert not set(evaluation["__row_id__"]) & set(train["__row_id__"])
        assert not {"email", "customer_id", "gender"} & set(evaluation.columns)
        # the time column comes as context only: a build_features(frame, context) may measure from it
        assert json.loads((stage / "spec.json").read_text())["context_columns"] == ["application_date"]
        assert "application_date" not in json.loads((stage / "spec.json").read_text())["feature_columns"]


async def test_build_features_can_measure_from_the_time_column_which_never_becomes_a_feature(governed: dict[str, Any]) -> None:
    """An account's age at application needs the application date, which is no feature itself."""
    (governed["workspace"] / "src/features.py").write_text(
        "import pandas as pd\n\n\ndef build_features(frame, context):\n    out = frame.copy()\n"
        "    out['days_into_year'] = pd.to_datetime(context['application_date']).dt.dayofyear\n    return out\n"
    )
    GitRepo(governed["workspace"]).commit_all("features: a feature measured from the application date")
    content = (await call(governed, {"reasoning": REASONING})).structured_content
    assert content["status"] == "FINISHED" and content["dirty"] is False, content
    model = governed["settings"].state_dir / "runs" / content["run_id"] / "final" / "outputs" / "model" / "feature_transform.json"
    transform = json.loads(model.read_text())
    assert "days_into_year" in transform["numeric"] and "application_date" not in transform["columns"]
    assert "application_date" not in json.loads(governed["ports"].tracking.get_run(content["run_id"])["params"]["feature_columns"])


async def test_a_run_that_ended_keeps_no_copy_of_the_dataset_rows(governed: dict[str, Any]) -> None:
    """Both stages got train.parquet and eval.parquet; the run's directory keeps what the operator
    reads (spec, features.py, logs, outputs), not the rows."""
    content = (await call(governed, {"reasoning": REASONING})).structured_content
    run_dir = governed["settings"].state_dir / "runs" / content["run_id"]
    assert sorted(p.name for p in run_dir.rglob("*.parquet")) == ["predictions.parquet", "predictions.parquet"]
    assert {p.name for p in (run_dir / "final" / "inputs").iterdir()} == {"spec.json", "features.py"}
    (governed["workspace"] / "src/features.py").write_text("def build_features(frame):\n    raise ValueError('no')\n")
    failed = await call(governed, {"reasoning": REASONING})
    assert failed.is_error and failed.structured_content["rule_id"] == "sandbox.child_error"
    runs = governed["settings"].state_dir / "runs"
    assert [p for p in runs.rglob("*.parquet") if p.parent.name == "inputs"] == []
    assert list(runs.glob("*/*/logs/child_report.json"))  # the failed child's report stays for the operator


async def test_same_config_and_seed_give_identical_metrics(governed: dict[str, Any]) -> None:
    first = (await call(governed, {"reasoning": REASONING})).structured_content
    second = (await call(governed, {"reasoning": REASONING})).structured_content
    assert first["metrics"] == second["metrics"] and first["run_id"] != second["run_id"]
    assert second["best_prior_run_id"] == first["run_id"] and second["metric_delta"] == 0


async def test_the_best_prior_run_is_one_made_on_the_same_dataset(governed: dict[str, Any], tmp_path: Path) -> None:
    from server.commands.data import import_files

    first = (await call(governed, {"reasoning": REASONING})).structured_content
    later = import_files(governed["workspace"], [write_credit_csv(tmp_path / "credit-2025.csv", rows=500)]).added.content_hash
    on_other = (await call(governed, {"config": {"data.dataset": later}, "reasoning": REASONING})).structured_content
    assert on_other["best_prior_run_id"] is None and on_other["metric_delta"] is None and on_other["outcome"] == "neutral"
    again = (await call(governed, {"reasoning": REASONING})).structured_content
    assert again["best_prior_run_id"] == first["run_id"] and again["metric_delta"] == 0


async def test_features_that_raise_fail_the_run_cleanly_and_are_audited(governed: dict[str, Any]) -> None:
    (governed["workspace"] / "src/features.py").write_text("def build_features(frame):\n    raise RuntimeError('boom')\n")
    result = await call(governed, {"reasoning": REASONING})
    assert result.is_error and result.structured_content["rule_id"] == "sandbox.child_error"
    assert "src/features.py" in result.structured_content["remediation"]
    runs = governed["ports"].tracking.search_runs([r for r in _experiments(governed)])
    assert [r["status"] for r in runs] == ["FAILED"]
    tail = governed["ports"].audit.tail(1)[0]
    assert tail["status"] == "failed" and tail["rule_ids"] == ["sandbox.child_error"] and tail["run_id"]
    assert verify(governed["settings"].audit_path).ok


def _experiments(governed: dict[str, Any]) -> list[str]:
    tracking = governed["ports"].tracking
    return [tracking.get_or_create_experiment("demo-bank/credit-default")]


async def test_dry_run_checks_everything_and_starts_no_run(governed: dict[str, Any]) -> None:
    result = await call(governed, {"reasoning": REASONING, "dry_run": True})
    assert not result.is_error and result.structured_content["dataset_hash"] == governed["hash"]
    assert governed["ports"].tracking.search_runs(_experiments(governed)) == []


@pytest.mark.parametrize("text", ['{"model": {"type": "logistic_regression", "params": {"C": 0.5}}}', "model:\n  type: logistic_regression\n  params: {C: 0.5}\n"])
async def test_config_changes_sent_as_json_or_yaml_text_are_read_like_the_mapping(governed: dict[str, Any], text: str) -> None:
    result = await call(governed, {"config": text, "reasoning": REASONING, "dry_run": True})
    assert not result.is_error, result.structured_content
    assert result.structured_content["config"]["model"] == {"type": "logistic_regression", "params": {"C": 0.5, "max_iter": 1000, "tol": 0.0001, "class_weight": None}}


async def test_an_exclusion_the_dataset_lacks_is_warned_about_in_the_dry_run(governed: dict[str, Any]) -> None:
    result = await call(governed, {"config": {"features.exclude": ["Income", "debt_ratio"]}, "reasoning": REASONING, "dry_run": True})
    assert not result.is_error, result.structured_content
    warnings = result.structured_content["columns"]["warnings"]
    assert 'features.exclude names "Income", which this dataset does not have: it excludes nothing' in " ".join(warnings), warnings
    assert "debt_ratio" not in " ".join(warnings) and "debt_ratio" not in result.structured_content["feature_columns"]
    assert "income" in result.structured_content["feature_columns"]


async def test_a_dotted_model_type_change_is_refused_with_the_whole_mapping_form_to_use(governed: dict[str, Any]) -> None:
    dotted = await call(governed, {"config": {"model.type": "logistic_regression"}, "reasoning": REASONING, "dry_run": True})
    assert dotted.is_error and "model.params: unknown fields: n_estimators, " in dotted.structured_content["reason"]
    assert "are not parameters of logistic_regression; its parameters are C, " in dotted.structured_content["reason"]
    remediation = dotted.structured_content["remediation"]
    assert remediation.startswith("fix this call's `config` changes") and '{"model": {"type": "torch_mlp", "params": {}}}' in remediation
    whole = await call(governed, {"config": {"model": {"type": "logistic_regression", "params": {}}}, "reasoning": REASONING, "dry_run": True})
    assert not whole.is_error, whole.structured_content


async def test_a_config_that_leaves_no_feature_is_denied_before_any_run(governed: dict[str, Any]) -> None:
    """Every usable column excluded: refused by name before training, instead of a run that fails in
    the sandbox as 'the run spec is invalid' with advice to fix src/features.py."""
    exclude = ["income", "debt_ratio", "credit_history_months", "employment_type"]
    for dry_run in (True, False):
        result = await call(governed, {"reasoning": REASONING, "config": {"features.exclude": exclude}, "dry_run": dry_run})
        content = result.structured_content
        assert result.is_error and content["rule_id"] == "features.none_left", content
        assert "features.exclude" in content["remediation"] and "income" in content["reason"]
    assert governed["ports"].tracking.search_runs(_experiments(governed)) == []


async def test_kfold_on_data_with_a_time_column_is_denied_as_leakage(governed: dict[str, Any]) -> None:
    result = await call(governed, {"reasoning": REASONING, "config": {"split": {"strategy": "stratified_kfold", "n_splits": 3, "test_size": 0.2}}})
    assert result.is_error and result.structured_content["rule_id"] == "training.temporal_split_when_time"


async def test_protected_field_in_the_run_config_is_denied(governed: dict[str, Any]) -> None:
    result = await call(governed, {"reasoning": REASONING, "config": {"split.test_size": 0.5}})
    assert result.is_error and result.structured_content["rule_id"] == "config.protected_fields"


async def test_a_protected_field_in_the_run_config_says_the_approval_starts_with_propose_config_change(governed: dict[str, Any]) -> None:
    """The shared remediation speaks of an approval_id 'in this result': run_experiment opens none."""
    for dry_run in (False, True):
        result = await call(governed, {"reasoning": REASONING, "config": {"split.test_size": 0.5}, "dry_run": dry_run})
        content = result.structured_content
        assert result.is_error and "approval_id" not in content, content
        assert "propose_config_change" in content["next_step"] and "no approval" in content["next_step"]


async def test_a_refusal_before_the_policies_also_names_the_protected_fields_the_config_changes(governed: dict[str, Any]) -> None:
    missing = {"data.dataset": "0" * 64}
    result = await call(governed, {"reasoning": REASONING, "config": {**missing, "split.test_size": 0.5}, "dry_run": True})
    content = result.structured_content
    assert result.is_error and content["rule_id"] == "data.not_found", content
    assert "also changes protected fields (split.test_size)" in content["remediation"] and "propose_config_change" in content["remediation"]
    alone = (await call(governed, {"reasoning": REASONING, "config": missing, "dry_run": True})).structured_content
    assert alone["rule_id"] == "data.not_found" and "protected" not in alone["remediation"]


async def test_hand_edited_protected_field_is_denied(governed: dict[str, Any]) -> None:
    set_config(governed["workspace"], split__test_size=0.3)
    result = await call(governed, {"reasoning": REASONING})
    assert result.is_error and result.structured_content["rule_id"] == "config.no_unapproved_overrides"


async def test_agent_without_reasoning_is_denied(governed: dict[str, Any]) -> None:
    (governed["workspace"] / "configs/reasoning.yaml").write_text("hypothesis_category: baseline\n")
    result = await call(governed, {})
    assert result.is_error and result.structured_content["rule_id"] == "reasoning.required_for_agents"


async def test_a_reasoning_file_claiming_a_result_before_the_run_is_denied(governed: dict[str, Any]) -> None:
    claimed = "\n".join(f"{k}: {v}" for k, v in REASONING.items()) + "\noutcome: confirmed\nmetric_delta: 0.05\n"
    (governed["workspace"] / "configs/reasoning.yaml").write_text(claimed)
    result = await call(governed, {})
    assert result.is_error and result.structured_content["rule_id"] == "reasoning.outcome_from_the_run", result.structured_content
    assert governed["ports"].tracking.search_runs(_experiments(governed)) == []


@pytest.mark.parametrize("where", ["argument", "file"])
async def test_reasoning_holding_a_credential_is_refused_before_any_run_not_redacted_after(governed: dict[str, Any], where: str) -> None:
    leaky = {**REASONING, "change_description": "Baseline with token ghp_abcdefghijklmnopqrstuvwxyz0123456789 set"}
    if where == "file":
        (governed["workspace"] / "configs/reasoning.yaml").write_text("\n".join(f"{k}: {v}" for k, v in leaky.items()) + "\n")
    result = await call(governed, {"reasoning": leaky} if where == "argument" else {})
    assert result.is_error and result.structured_content["rule_id"] == "input.credential", result.structured_content
    assert "ghp_" not in json.dumps(result.structured_content)
    assert governed["ports"].tracking.search_runs(_experiments(governed)) == []


async def test_the_resampling_threads_do_not_change_any_interval_or_paired_bound(governed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def resampled_metrics(result: Any) -> dict[str, float]:
        assert not result.is_error, result.structured_content
        logged = governed["ports"].tracking.get_run(result.structured_content["run_id"])["metrics"]
        return {k: v for k, v in logged.items() if k.startswith(("val_", "test_")) and ("_ci95_" in k or k.endswith(("_lcb", "_ucb")))}

    threaded = resampled_metrics(await call(governed, {"reasoning": REASONING}))
    monkeypatch.setattr(experiment_report, "RESAMPLING_THREADS", 1)
    one_thread = resampled_metrics(await call(governed, {"reasoning": REASONING}))
    assert len(threaded) >= 30 and any(k.startswith("test_") and k.endswith("_lcb") for k in threaded)
    assert threaded == one_thread  # == on floats: the same numbers, whatever the threads did first
