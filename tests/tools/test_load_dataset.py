"""load_dataset through a real in-memory MCP client on a real workspace with an imported dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mcp import Client

from server.app import build_server
from server.commands.data import import_files
from server.demo_data import credit_frame
from server.ports import Ports
from server.settings import Settings
from tests.server.cas_helpers import snapshot, writable
from tools.load_dataset import class_balance, dates_read_as_text, masked_sample, numbers_read_as_text, quality_checks, value_ranges

pytestmark = pytest.mark.anyio
PII = ("customer_id", "full_name", "email")


@pytest.fixture
def dataset(workspace: Path, tmp_path: Path) -> str:
    frame = credit_frame(rows=120, seed=5)
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)  # three duplicate rows
    source = tmp_path / "credit.csv"
    frame.to_csv(source, index=False)
    return import_files(workspace, [source]).added.content_hash


async def call(settings: Settings, ports: Ports, arguments: dict[str, Any]) -> Any:
    async with Client(build_server(settings, ports)) as client:
        return await client.call_tool("load_dataset", arguments)


def shadow(workspace: Path) -> dict[str, tuple]:
    return snapshot(workspace / "data")


async def test_load_dataset_returns_manifest_quality_checks_and_a_pii_masked_sample(settings: Settings, ports: Ports, dataset: str) -> None:
    result = await call(settings, ports, {"content_hash": dataset})
    assert not result.is_error
    payload = result.structured_content
    assert payload["content_hash"] == dataset and len(payload["schema_hash"]) == 64
    assert payload["rows"] == 123 and payload["columns"][:3] == list(PII) and payload["dtypes"]["income"] == "float64"
    assert [f["path"] for f in payload["files"]] == ["credit.csv"]
    assert payload["sample_rows"] == 5 and len(payload["sample"]) == 5 and payload["masked_columns"] == list(PII)
    assert all(row[c] == "***" for row in payload["sample"] for c in PII)
    text = result.content[0].text
    assert "@example.com" not in text and "Customer 7" not in text and "C100007" not in text


async def test_quality_checks_count_nulls_duplicates_ranges_and_class_balance(settings: Settings, ports: Ports, dataset: str) -> None:
    quality = (await call(settings, ports, {"content_hash": dataset})).structured_content["quality"]
    assert quality["duplicate_rows"] == 3 and quality["null_counts"]["income"] > 0 and quality["null_counts"]["default"] == 0
    assert set(quality["ranges"]) == {"income", "debt_ratio", "credit_history_months", "default"}
    assert 0 <= quality["ranges"]["debt_ratio"]["min"] <= quality["ranges"]["debt_ratio"]["max"] <= 1
    balance = quality["class_balance"]
    assert balance["label"] == "default" and balance["present"] and sum(balance["counts"].values()) == 123
    assert set(balance["counts"]) == {"0", "1"} and abs(sum(balance["shares"].values()) - 1) < 1e-6


async def test_a_load_is_audited_with_the_content_hash(settings: Settings, ports: Ports, dataset: str) -> None:
    await call(settings, ports, {"content_hash": dataset})
    decision, outcome = ports.audit.tail(2)
    assert decision["decision"] == "allow" and decision["rule_ids"] == ["role.known", "data.shadow_only", "data.integrity", "data.registered", "data.pii_masked"]
    assert outcome["status"] == "ok" and outcome["content_hash"] == dataset


async def test_the_tool_schema_pins_the_hash_format_and_declares_a_read_only_idempotent_tool(settings: Settings, ports: Ports) -> None:
    async with Client(build_server(settings, ports)) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "load_dataset")
    field = tool.input_schema["properties"]["content_hash"]
    assert field["pattern"] == "^[0-9a-f]{64}$" and field["minLength"] == field["maxLength"] == 64 and field["description"]
    assert tool.annotations.read_only_hint is True and tool.annotations.idempotent_hint is True
    assert tool.annotations.destructive_hint is False


BAD_ARGUMENTS = {
    "non-hex": {"content_hash": "z" * 64},
    "uppercase": {"content_hash": "AB" * 32},
    "63 chars": {"content_hash": "a" * 63},
    "dot-dot": {"content_hash": "../x"},
    "absolute path": {"content_hash": "/etc/passwd"},
    "trailing newline": {"content_hash": "a" * 64 + "\n"},
    "not a string": {"content_hash": 12},
    "unknown field": {"content_hash": "a" * 64, "path": "data/shadow"},
}


@pytest.mark.parametrize("kind", BAD_ARGUMENTS)
async def test_malformed_arguments_are_refused_by_the_schema_and_change_nothing(settings: Settings, ports: Ports, workspace: Path, dataset: str, kind: str) -> None:
    before = shadow(workspace)
    result = await call(settings, ports, BAD_ARGUMENTS[kind])
    payload = result.structured_content
    assert result.is_error and payload["decision"] == "deny" and payload["rule_id"] == "input.schema"
    assert ("path" if kind == "unknown field" else "content_hash") in payload["reason"]
    assert ports.audit.tail(1)[0]["decision"] == "deny"
    assert shadow(workspace) == before


def _swap(folder: Path) -> None:
    target = folder / "credit.csv"
    body = target.read_bytes().replace(b",1\n", b",0\n", 1)
    target.unlink()
    target.write_bytes(body)


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "swapped file": (_swap, "credit.csv was changed after import"),
    "extra file": (lambda f: (f / "more.csv").write_text("a\n1\n"), "more.csv was not imported"),
    "symlink in dir": (lambda f: (f / "link.csv").symlink_to(f / "credit.csv"), "link.csv is a symbolic link"),
    "hardlink in dir": (lambda f: os.link(f / "credit.csv", f.parent / "second-name.csv"), "credit.csv has 2 hard links"),
    "missing file": (lambda f: (f / "credit.csv").unlink(), "credit.csv is missing"),
}


@pytest.mark.parametrize("kind", TAMPERING)
async def test_a_tampered_dataset_is_denied_by_data_integrity_without_any_data(settings: Settings, ports: Ports, workspace: Path, dataset: str, kind: str) -> None:
    tamper, detail = TAMPERING[kind]
    with writable(workspace / "data" / "shadow" / dataset) as folder:
        tamper(folder)
    before = shadow(workspace)
    result = await call(settings, ports, {"content_hash": dataset})
    payload = result.structured_content
    assert result.is_error and payload["rule_id"] == "data.integrity" and detail in payload["reason"]
    assert "mlgate data add" in payload["remediation"] and "sample" not in payload and "rows" not in payload
    assert ports.audit.tail(1)[0]["denied_by"] == ["data.integrity"]
    assert shadow(workspace) == before


async def test_a_symlink_posing_as_a_dataset_is_denied_as_outside_the_shadow_store(settings: Settings, ports: Ports, workspace: Path, dataset: str) -> None:
    alias = "0" * 64
    (workspace / "data" / "shadow" / alias).symlink_to(workspace / "data" / "shadow" / dataset)
    payload = (await call(settings, ports, {"content_hash": alias})).structured_content
    assert payload["rule_id"] == "data.shadow_only" and f"data/shadow/{dataset}" in payload["reason"]


async def test_an_unknown_hash_is_not_found_with_where_to_look(settings: Settings, ports: Ports, dataset: str) -> None:
    payload = (await call(settings, ports, {"content_hash": "1" * 64})).structured_content
    assert payload["rule_id"] == "data.not_found" and "mlgate://datasets" in payload["remediation"]


def test_masked_sample_masks_pii_in_any_case_and_keeps_json_types() -> None:
    frame = pd.DataFrame({"EMAIL": ["a@b.c", None], "x": [1.5, float("nan")], "when": pd.to_datetime(["2024-01-02", "2024-01-03"])})
    sample = masked_sample(frame, ["email"], 5)
    assert sample == [{"EMAIL": "***", "x": 1.5, "when": "2024-01-02T00:00:00.000"}, {"EMAIL": "***", "x": None, "when": "2024-01-03T00:00:00.000"}]
    assert masked_sample(frame, [], 0) == []


def test_ranges_skip_pii_booleans_and_text_and_survive_empty_columns() -> None:
    frame = pd.DataFrame({"id": [1, 2], "flag": [True, False], "s": ["a", "b"], "v": [3, -1], "e": [float("nan")] * 2})
    assert value_ranges(frame, ["ID"]) == {"v": {"min": -1, "max": 3}, "e": {"min": None, "max": None}}


def test_class_balance_reports_a_missing_label_and_caps_the_values_listed() -> None:
    frame = pd.DataFrame({"y": list(range(10)) + [None]})
    assert class_balance(frame, {"target": "default"}, 5) == {"label": "default", "present": False}
    balance = class_balance(frame, {"target": "y"}, 3)
    assert len(balance["counts"]) == 3 and balance["distinct_values"] == 10 and balance["missing"] == 1
    assert json.dumps(quality_checks(frame, {"label": {"target": "y"}}, 3))


def test_the_class_balance_of_a_boolean_label_counts_positives_for_a_positive_class_written_true() -> None:
    frame = pd.DataFrame({"defaulted": pd.Series([True, False, False, None], dtype="object").astype("boolean")})
    balance = class_balance(frame, {"target": "defaulted", "positive_class": "true"}, 20)
    assert (balance["positive_count"], balance["positive_share"], balance["missing"]) == (1, round(1 / 3, 6), 1)


def test_class_shares_are_of_the_labelled_rows_as_the_positive_share_is() -> None:
    frame = pd.DataFrame({"y": [1, 0, 0, 0] + [None] * 4})
    balance = class_balance(frame, {"target": "y", "positive_class": 1}, 20)
    assert balance["shares"] == {"0.0": 0.75, "1.0": 0.25} and balance["shares"]["1.0"] == balance["positive_share"]
    assert balance["missing"] == 4


def test_a_text_column_of_numbers_with_placeholders_is_reported_with_the_tokens_that_made_it_text() -> None:
    amounts = [f"{1000 + i}.50" for i in range(95)] + ["-"] * 4 + ["n.a. (not applicable in this product line)"]
    frame = pd.DataFrame({
        "income": amounts,
        "iban": amounts,  # PII: never described
        "branch_code": [f"{i:04d}" for i in range(100)],  # all numbers, kept as text on purpose: codes
        "region": ["north", "south"] * 50,
    })
    found = numbers_read_as_text(frame, ["iban"])
    assert found == {"income": {"numeric_share": 0.95, "rows_not_numbers": 5, "not_numbers": ["-", "n.a. (not applicable"], "thousands_separators": 0}}
    assert quality_checks(frame, {"pii_columns": ["iban"]}, 20)["numbers_read_as_text"] == found


def test_date_columns_other_than_the_time_column_are_reported_as_dates_read_as_text() -> None:
    import datetime

    frame = pd.DataFrame({
        "application_date": ["2021-01-04"] * 100,  # the standards' time column: the split reads it
        "open_date": [f"2019-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(98)] + [None, "unknown"],
        "last_payment": [f"{1 + i % 28}/{1 + i % 12:02d}/2020" for i in range(100)],
        "vintage": ["Mar-2018", "Apr-2018"] * 50,
        "closed_on": [datetime.date(2022, 1, 1 + i % 28) for i in range(100)],
        "birth_date": ["1980-01-01"] * 100,  # PII: never described
        "region": ["north", "south"] * 50,
        "product": ["2021 campaign", "Jan offer"] * 50,  # names with a year or a month are not dates
        "amount": [float(i) for i in range(100)],
    })  # fmt: skip
    found = dates_read_as_text(frame, ["birth_date"], "application_date")
    assert found == {"open_date": {"date_share": 0.989899, "distinct_values": 85}, "last_payment": {"date_share": 1.0, "distinct_values": 84},
                     "vintage": {"date_share": 1.0, "distinct_values": 2}, "closed_on": {"date_share": 1.0, "distinct_values": 28}}, found  # fmt: skip
    standards = {"pii_columns": ["birth_date"], "time_column": "application_date"}
    assert quality_checks(frame, standards, 20)["dates_read_as_text"] == found


def test_a_column_of_a_few_dates_among_text_is_not_reported() -> None:
    frame = pd.DataFrame({"note": ["2021-01-04"] * 10 + ["called the customer"] * 90})
    assert dates_read_as_text(frame, [], None) == {}


def test_amounts_with_thousands_separators_are_reported_as_numbers_read_as_text() -> None:
    frame = pd.DataFrame({"amount": ["1,234.50", "2,000.00", "950.10", "12,345,678"], "pair": ["1,2", "3,4", "5,6", "7,8"]})
    assert numbers_read_as_text(frame, []) == {"amount": {"numeric_share": 1.0, "rows_not_numbers": 0, "not_numbers": [], "thousands_separators": 3}}
