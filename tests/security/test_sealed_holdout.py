"""The sealed holdout, attacked the way an agent would try to read the test set: every run view,
sort, filter, comparison and resource is queried for a run whose test figures differ from its
validation ones, and no test figure comes back. A human reading the run sees them, and that read is
counted as a test-set query of the dataset in the audit chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.test_queries import TestQueryLedger, count_from_audit
from tests.tools.runs_lab import SEALED_OFFSET, RunsLab, build_runs_lab, human, logged_run

pytestmark = pytest.mark.anyio
PRIMARY = 0.7777


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> RunsLab:
    return build_runs_lab(tmp_path_factory.mktemp("sealed"))


@pytest.fixture(scope="module")
def runs(lab: RunsLab) -> dict[str, str]:
    return {"best_on_test": logged_run(lab, primary=PRIMARY), "other": logged_run(lab, primary=0.7)}


def sealed_values(lab: RunsLab, run_id: str) -> set[str]:
    """Every sealed figure of the run, as the text a JSON result would carry (rounded too)."""
    metrics = lab.ports.tracking.get_run(run_id)["metrics"]
    found = {v for k, v in metrics.items() if k.startswith(("test_", "baseline_"))}
    return {json.dumps(v) for v in found} | {json.dumps(round(v, 6)) for v in found}


def leaks(document: Any, values: set[str]) -> list[str]:
    text = json.dumps(document)
    return sorted(v for v in values if v in text)


async def test_no_agent_view_of_a_run_carries_its_test_figures(lab: RunsLab, runs: dict[str, str]) -> None:
    values = sealed_values(lab, runs["best_on_test"])
    assert json.dumps(round(PRIMARY + SEALED_OFFSET, 6)) in values
    calls = [
        ("get_run", {"run_id": runs["best_on_test"]}),
        ("list_runs", {"sort_by": "roc_auc"}),
        ("list_runs", {"min_primary_metric": 0.76}),
        ("compare_runs", {"run_ids": [runs["best_on_test"], runs["other"]]}),
    ]
    for tool, arguments in calls:
        failed, content = await lab.call(tool, arguments)
        assert not failed, content
        assert leaks(content, values) == [], (tool, arguments)
    failed, content = await lab.call("get_run", {"run_id": runs["best_on_test"]})
    assert content["test_set"]["sealed"] is True and content["metrics"]["roc_auc"]["value"] == pytest.approx(PRIMARY)


async def test_sorting_and_filtering_select_on_validation_not_on_the_test_set(lab: RunsLab, runs: dict[str, str]) -> None:
    failed, content = await lab.call("list_runs", {"min_primary_metric": PRIMARY - 0.001})
    assert not failed and [r["run_id"] for r in content["runs"]] == [runs["best_on_test"]]
    assert content["filter"] == f"metrics.`val_roc_auc` >= {PRIMARY - 0.001!r}"


async def test_run_resources_carry_no_test_figures(lab: RunsLab, runs: dict[str, str]) -> None:
    values = sealed_values(lab, runs["best_on_test"])
    async with Client(build_server(lab.settings, lab.ports)) as client:
        for uri in ("mlgate://runs", f"mlgate://runs/{runs['best_on_test']}"):
            text = (await client.read_resource(uri)).contents[0].text
            assert leaks(text, values) == [], uri


async def test_a_human_reads_the_test_figures_and_the_read_is_counted_in_the_audit_chain(lab: RunsLab, runs: dict[str, str]) -> None:
    dataset = lab.ports.tracking.get_run(runs["best_on_test"])["params"]["dataset_content_hash"]
    before = lab.ports.test_queries.count(dataset)
    failed, content = await lab.call("get_run", {"run_id": runs["best_on_test"]}, human(lab))
    assert not failed and content["test_set"]["sealed"] is False
    assert content["test_set"]["metrics"]["roc_auc"]["value"] == pytest.approx(PRIMARY + SEALED_OFFSET)
    assert content["test_set"]["queries_of_this_dataset"] == before + 1 == lab.ports.test_queries.count(dataset)
    record = [r for r in lab.ports.audit.tail(10) if r.get("kind") == "test_query"][-1]
    assert record["dataset_hash"] == dataset and record["principal"] == "alice" and record["purpose"] == "revealed by get_run"
    assert count_from_audit(lab.ports.audit.tail(1000))[dataset] == lab.ports.test_queries.count(dataset)


async def test_an_agent_reading_a_run_spends_no_test_query(lab: RunsLab, runs: dict[str, str]) -> None:
    dataset = lab.ports.tracking.get_run(runs["best_on_test"])["params"]["dataset_content_hash"]
    before = lab.ports.test_queries.count(dataset)
    await lab.call("get_run", {"run_id": runs["best_on_test"]})
    assert lab.ports.test_queries.count(dataset) == before


def test_the_ledger_refuses_a_malformed_dataset_and_counts_per_dataset(tmp_path: Path) -> None:
    ledger = TestQueryLedger(tmp_path, None)
    assert [ledger.record("a" * 64, purpose="p", run_id="r", principal="x") for _ in range(2)] == [1, 2]
    assert ledger.count("b" * 64) == 0
    with pytest.raises(ValueError):
        ledger.record("../etc", purpose="p", run_id="r", principal="x")
