"""load_dataset on a dataset wider than one result should detail (bureau data has hundreds of
attributes): a real in-memory MCP client on a real workspace with an imported dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from server.commands.data import import_files
from server.demo_data import credit_frame
from server.ports import Ports
from server.settings import Settings, policy_limits
from tests.tools.test_load_dataset import call
from tools.errors import InvalidInput
from tools.load_dataset import detailed_columns

pytestmark = pytest.mark.anyio
LIMIT = int(policy_limits()["datasets"]["detail_columns"])
EXTRA = [f"bureau_attribute_{i:03d}" for i in range(LIMIT + 30)]


@pytest.fixture
def wide(workspace: Path, tmp_path: Path) -> tuple[str, list[str]]:
    frame = credit_frame(rows=60, seed=5)
    extra = pd.DataFrame(np.random.default_rng(0).normal(size=(len(frame), len(EXTRA))).round(3), columns=EXTRA)
    frame = pd.concat([extra, frame], axis=1)  # the label and the PII columns come after the first LIMIT
    frame.to_csv(tmp_path / "wide.csv", index=False)
    return import_files(workspace, [tmp_path / "wide.csv"]).added.content_hash, list(frame.columns)


def test_the_columns_detailed_are_all_up_to_the_limit_else_the_first_ones_and_the_label() -> None:
    names = [f"c{i}" for i in range(6)]
    assert detailed_columns(names, None, 6, "c5") == names
    assert detailed_columns(names, None, 3, "c5") == ["c0", "c1", "c2", "c5"]
    assert detailed_columns(names, ["c4", "c1", "c4"], 3, "c5") == ["c1", "c4"]
    with pytest.raises(InvalidInput) as refused:
        detailed_columns(names, ["c1", "C4", "x"], 3, None)
    assert refused.value.rule_id == "input.columns" and refused.value.reason == 'the dataset has no column "C4", "x"'


async def test_a_wide_dataset_is_detailed_for_its_first_columns_and_the_label_and_named_in_full(settings: Settings, ports: Ports, wide: tuple[str, list[str]]) -> None:
    content_hash, columns = wide
    result = (await call(settings, ports, {"content_hash": content_hash})).structured_content
    shown = [*EXTRA[:LIMIT], "default"]
    assert result["columns"] == columns and result["detailed_columns"]["count"] == LIMIT + 1 and result["detailed_columns"]["of"] == len(columns)
    assert "columns: [exact names" in result["detailed_columns"]["more"]
    assert list(result["dtypes"]) == shown and list(result["quality"]["null_counts"]) == shown and list(result["sample"][0]) == shown
    assert result["quality"]["class_balance"]["present"] and result["masked_columns"] == []


async def test_named_columns_are_detailed_and_a_named_pii_column_stays_masked(settings: Settings, ports: Ports, wide: tuple[str, list[str]]) -> None:
    content_hash, _ = wide
    result = await call(settings, ports, {"content_hash": content_hash, "columns": ["income", "email", EXTRA[-1]]})
    assert not result.is_error, result.structured_content
    content = result.structured_content
    assert list(content["dtypes"]) == [EXTRA[-1], "email", "income"] and content["masked_columns"] == ["email"]
    assert {row["email"] for row in content["sample"]} == {"***"} and "@" not in json.dumps(content["sample"])
    assert content["detailed_columns"]["count"] == 3 and set(content["quality"]["ranges"]) == {EXTRA[-1], "income"}


async def test_a_column_the_dataset_lacks_is_refused_with_its_name(settings: Settings, ports: Ports, wide: tuple[str, list[str]]) -> None:
    content_hash, _ = wide
    result = await call(settings, ports, {"content_hash": content_hash, "columns": ["Income"]})
    assert result.is_error and result.structured_content["rule_id"] == "input.columns" and '"Income"' in result.structured_content["reason"]


async def test_a_narrow_dataset_is_detailed_whole_as_before(settings: Settings, ports: Ports, workspace: Path, tmp_path: Path) -> None:
    credit_frame(rows=30, seed=1).to_csv(tmp_path / "narrow.csv", index=False)
    content = (await call(settings, ports, {"content_hash": import_files(workspace, [tmp_path / "narrow.csv"]).added.content_hash})).structured_content
    assert content["detailed_columns"] == {"count": len(content["columns"]), "of": len(content["columns"])} and list(content["dtypes"]) == content["columns"]


async def test_the_dataset_manifest_resource_details_a_wide_dataset_as_load_dataset_does(settings: Settings, ports: Ports, wide: tuple[str, list[str]]) -> None:
    from tests.resources.test_datasets import read  # noqa: PLC0415

    content_hash, columns = wide
    served = await read(settings, ports, f"mlgate://datasets/{content_hash}")
    assert served["columns"] == columns and list(served["dtypes"]) == [*EXTRA[:LIMIT], "default"]
    assert served["detailed_columns"]["count"] == LIMIT + 1 and set(served["quality"]["null_counts"]) == set(served["dtypes"])
