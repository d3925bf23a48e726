"""run_experiment on datasets wider than one MLflow param can list (bureau data has hundreds of
attributes): real workspace, real CAS, real bwrap children, real sqlite MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mcp import Client

from server.app import build_server
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import build_ports
from server.settings import load_settings
from tests.tools.test_run_experiment import REASONING, set_config
from tools.experiment_report import feature_params
from tools.provenance import MAX_PARAM_CHARS, canonical_json, feature_columns_sha256

pytestmark = pytest.mark.anyio
WIDE = [f"bureau_attribute_{i:04d}_count_of_enquiries_last_12m" for i in range(150)]  # 7 800 characters as a list


@pytest.fixture
def wide(workspace: Path, tmp_path: Path) -> dict[str, Any]:
    from server.commands.data import import_files

    frame = pd.read_csv(write_credit_csv(tmp_path / "credit.csv", rows=400))
    extra = pd.DataFrame(np.random.default_rng(0).normal(size=(len(frame), len(WIDE))).round(3), columns=WIDE)
    pd.concat([frame, extra], axis=1).to_csv(tmp_path / "wide.csv", index=False)
    content_hash = import_files(workspace, [tmp_path / "wide.csv"]).added.content_hash
    set_config(workspace, data__dataset=content_hash, model__params={"n_estimators": 10, "max_depth": 2}, evaluation__bootstrap_samples=20)
    GitRepo(workspace).commit_all("use the wide dataset")
    settings = load_settings(workspace, transport="memory")
    return {"settings": settings, "ports": build_ports(settings)}


async def call(wide: dict[str, Any], tool: str, arguments: dict[str, Any]) -> Any:
    async with Client(build_server(wide["settings"], wide["ports"])) as client:
        return await client.call_tool(tool, arguments)


def test_the_feature_list_is_a_param_only_when_it_fits_and_its_count_and_hash_always_are() -> None:
    short = feature_params(["income", "debt_ratio"])
    assert short == {"feature_count": 2, "feature_columns_sha256": feature_columns_sha256(["income", "debt_ratio"]), "feature_columns": ["income", "debt_ratio"]}
    assert len(canonical_json(WIDE)) > MAX_PARAM_CHARS
    assert feature_params(WIDE) == {"feature_count": 150, "feature_columns_sha256": feature_columns_sha256(WIDE)}


async def test_a_dataset_with_hundreds_of_columns_runs_and_get_run_lists_every_feature(wide: dict[str, Any]) -> None:
    result = await call(wide, "run_experiment", {"reasoning": REASONING})
    assert not result.is_error, result.structured_content
    run = wide["ports"].tracking.get_run(result.structured_content["run_id"])
    assert run["status"] == "FINISHED" and "feature_columns" not in run["params"] and run["params"]["feature_count"] == str(len(WIDE) + 4)
    shown = (await call(wide, "get_run", {"run_id": run["run_id"]})).structured_content["feature_columns"]
    assert set(WIDE) <= set(shown) and run["params"]["feature_columns_sha256"] == feature_columns_sha256(shown)


async def test_a_run_whose_params_mlflow_refuses_ends_failed_not_running(wide: dict[str, Any]) -> None:
    excluded = [f"{name}_archived" for name in WIDE]  # excludes nothing, but is logged with the config
    result = await call(wide, "run_experiment", {"config": {"features.exclude": excluded}, "reasoning": REASONING})
    assert result.is_error and result.structured_content["rule_id"] == "tracking.param_size"
    assert "config.features.exclude" in result.structured_content["reason"] and "src/features.py" in result.structured_content["remediation"]
    tracking = wide["ports"].tracking
    runs = tracking.search_runs([tracking.get_or_create_experiment("demo-bank/credit-default")])
    assert [r["status"] for r in runs] == ["FAILED"]


def test_reproduce_compares_a_feature_list_too_long_for_a_param_by_its_hash() -> None:
    from tools.reproduce import _features_pin

    logged = {"feature_count": "150", "feature_columns_sha256": feature_columns_sha256(WIDE)}
    assert _features_pin(logged, list(WIDE))["ok"] is True
    changed = _features_pin(logged, WIDE[:-1])
    assert changed["ok"] is False and changed["expected"] == logged["feature_columns_sha256"] and "compared by feature_columns_sha256" in changed["reason"]
    assert _features_pin({"feature_columns": '["a","b"]'}, ["a", "b"])["ok"] is True
