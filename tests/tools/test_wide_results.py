"""Results on a dataset of thousands of numbered bureau attributes stay readable by an agent's
client: load_dataset, a run_experiment dry run and get_run name every column, by family past 200
(tools/name_families.py); check_drift reads a baseline of 2 100 features and lists the highest
PSI. A real workspace, a real run in the sandbox, an in-memory MCP client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mcp import Client

from server.app import build_server
from server.commands.data import import_files
from server.demo_data import credit_frame
from server.git import GitRepo
from server.ports import Ports
from server.settings import Settings
from tests.tools.test_run_experiment import REASONING, set_config
from tools.name_families import MAX_LISTED, expand

pytestmark = pytest.mark.anyio
BUREAU = [f"bureau_attribute_{i:04d}_count_of_enquiries_last_12m" for i in range(2100)]  # a drift baseline over 1 MiB
MAX_RESULT = 25_000  # bytes: well under what a client reads from one call


@pytest.fixture
def wide(workspace: Path, tmp_path: Path) -> tuple[str, list[str]]:
    frame = credit_frame(rows=300, seed=5)
    extra = pd.DataFrame(np.random.default_rng(0).normal(size=(len(frame), len(BUREAU))).round(2), columns=BUREAU)
    frame = pd.concat([frame, extra], axis=1)
    frame.to_csv(tmp_path / "wide.csv", index=False)
    content_hash = import_files(workspace, [tmp_path / "wide.csv"]).added.content_hash
    set_config(workspace, data__dataset=content_hash, model__type="logistic_regression", model__params={}, evaluation__bootstrap_samples=20)
    GitRepo(workspace).commit_all("wide bureau data")
    return content_hash, list(frame.columns)


async def call(settings: Settings, ports: Ports, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(build_server(settings, ports)) as client:
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.structured_content
    assert len(json.dumps(result.structured_content)) < MAX_RESULT
    return result.structured_content


def every_name(content: dict[str, Any], field: str) -> list[str]:
    return [*content[field], *(name for family in content[f"{field}_families"] for name in expand(family))]


async def test_load_dataset_names_every_column_of_a_wide_dataset_by_family(settings: Settings, ports: Ports, wide: tuple[str, list[str]]) -> None:
    content_hash, columns = wide
    content = await call(settings, ports, "load_dataset", {"content_hash": content_hash})
    assert sorted(every_name(content, "columns")) == sorted(columns) and content["columns_total"] == len(columns)
    assert content["columns_families"] == [{"prefix": "bureau_attribute_", "suffix": "_count_of_enquiries_last_12m", "numbers": ["0000-2099"], "count": 2100}]
    named = await call(settings, ports, "load_dataset", {"content_hash": content_hash, "columns": [BUREAU[1499]]})
    assert list(named["dtypes"]) == [BUREAU[1499]]  # a name read from a family details that column


async def test_a_dry_run_and_get_run_name_every_feature_of_a_wide_run_by_family(settings: Settings, ports: Ports, wide: tuple[str, list[str]]) -> None:
    preview = await call(settings, ports, "run_experiment", {"reasoning": REASONING, "dry_run": True})
    features = every_name(preview, "feature_columns")
    assert set(BUREAU) <= set(features) and "default" not in features and preview["feature_columns_total"] == len(features)
    run_id = (await call(settings, ports, "run_experiment", {"reasoning": REASONING}))["run_id"]
    detail = await call(settings, ports, "get_run", {"run_id": run_id})
    assert sorted(every_name(detail, "feature_columns")) == sorted(features) and detail["feature_columns_total"] == len(features)
    drift = await call(settings, ports, "check_drift", {"content_hash": detail["provenance"]["dataset_content_hash"], "run_id": run_id})
    assert drift["drifted"] is False and drift["features"] == len(features) and len(drift["psi"]) == MAX_LISTED
    assert drift["psi_omitted"]["features"] == len(features) - MAX_LISTED and drift["psi_omitted"]["highest"] <= min(drift["psi"].values())
