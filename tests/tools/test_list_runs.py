"""list_runs through the real server: runs logged as run_experiment logs them, sqlite MLflow."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from mcp import Client

from server.app import build_server
from server.audit import verify
from server.ports import build_ports
from server.settings import Settings
from tests.tools.runs_lab import RunsLab, build_runs_lab, foreign_run, logged_run
from tools.metric_names import METRICS
from tools.list_runs import SortKey

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> RunsLab:
    return build_runs_lab(tmp_path_factory.mktemp("list-runs"))


@pytest.fixture(scope="module")
def runs(lab: RunsLab) -> dict[str, str]:
    return {
        "good": logged_run(lab, primary=0.80, outcome="confirmed"),
        "weak": logged_run(lab, primary=0.65, outcome="negative", principal="other-agent"),
        "dirty": logged_run(lab, primary=0.74, dirty=True),
        "failed": logged_run(lab, status="FAILED"),
        "reproduction": logged_run(lab, primary=0.80, run_kind="reproduction"),
        "foreign": foreign_run(lab),
    }


async def listed(lab: RunsLab, **arguments: Any) -> list[dict[str, Any]]:
    is_error, content = await lab.call("list_runs", arguments)
    assert not is_error, content
    return content["runs"]


async def test_only_this_projects_runs_are_listed_newest_first(lab: RunsLab, runs: dict[str, str]) -> None:
    rows = await listed(lab)
    assert [r["run_id"] for r in rows] == [runs[k] for k in ("reproduction", "failed", "dirty", "weak", "good")]
    assert runs["foreign"] not in {r["run_id"] for r in rows}


async def test_each_row_carries_provenance_and_the_primary_metric_with_its_interval(lab: RunsLab, runs: dict[str, str]) -> None:
    row = next(r for r in await listed(lab) if r["run_id"] == runs["good"])
    assert row["status"] == "FINISHED" and row["principal"] == "codex" and row["outcome"] == "confirmed" and row["gates_passed"] is True
    assert row["primary_metric"] == {"metric": "roc_auc", "value": 0.80, "ci95": {"low": pytest.approx(0.78), "high": pytest.approx(0.82)}}
    assert row["commit"] == "a" * 40 and row["dirty"] is False and len(row["dataset_hash"]) == 64
    assert row["name"] == "baseline" and row["start_time"].endswith("+00:00")


async def test_filters_by_status_outcome_kind_and_metric_floor(lab: RunsLab, runs: dict[str, str]) -> None:
    assert [r["run_id"] for r in await listed(lab, status="FAILED")] == [runs["failed"]]
    assert [r["run_id"] for r in await listed(lab, outcome="negative")] == [runs["weak"]]
    assert [r["run_id"] for r in await listed(lab, run_kind="reproduction")] == [runs["reproduction"]]
    floor = {r["run_id"] for r in await listed(lab, min_primary_metric=0.74, run_kind="experiment")}
    assert floor == {runs["good"], runs["dirty"]}


async def test_sorting_by_a_metric_puts_the_best_first_and_bounds_the_count(lab: RunsLab, runs: dict[str, str]) -> None:
    rows = await listed(lab, sort_by="roc_auc", run_kind="experiment", status="FINISHED", max_results=2)
    assert [r["run_id"] for r in rows] == [runs["good"], runs["dirty"]]
    ascending = await listed(lab, sort_by="roc_auc", ascending=True, status="FINISHED", max_results=1)
    assert [r["run_id"] for r in ascending] == [runs["weak"]]


@pytest.mark.parametrize("arguments", [{"max_results": 0}, {"max_results": 101}, {"status": "DONE"}, {"sort_by": "metrics.x; drop"}, {"min_primary_metric": "0.7"}, {"owner": "x"}])
async def test_out_of_bounds_or_unknown_arguments_are_refused_as_input_errors(lab: RunsLab, arguments: dict[str, Any]) -> None:
    is_error, content = await lab.call("list_runs", arguments)
    assert is_error and content["rule_id"] == "input.schema"


async def test_a_project_that_never_trained_lists_nothing_and_creates_no_experiment(settings: Settings) -> None:
    ports = build_ports(settings)
    async with Client(build_server(settings, ports)) as client:
        result = await client.call_tool("list_runs", {})
    assert not result.is_error and result.structured_content["runs"] == [] and result.structured_content["count"] == 0
    assert ports.tracking.find_experiment("demo-bank/credit-default") is None


async def test_listing_is_read_only_audited_and_annotated_so(lab: RunsLab, runs: dict[str, str]) -> None:
    await listed(lab, status="FINISHED")
    tail = lab.ports.audit.tail(2)
    assert [r["kind"] for r in tail] == ["decision", "outcome"] and tail[0]["rule_ids"] == ["role.known"]
    assert verify(lab.settings.audit_path).ok
    from tools.list_runs import SPEC

    assert SPEC.read_only and SPEC.idempotent and not SPEC.destructive


def test_sort_keys_are_the_metrics_the_server_computes() -> None:
    assert set(get_args(SortKey)) == {"start_time", *METRICS}


async def test_the_sort_by_description_names_values_the_schema_accepts(settings: Settings) -> None:
    """An agent writes what the description shows: `roc_auc`, not the `val_roc_auc` name runs log."""
    async with Client(build_server(settings, build_ports(settings))) as client:
        [tool] = [t for t in (await client.list_tools()).tools if t.name == "list_runs"]
    sort_by = tool.input_schema["properties"]["sort_by"]
    assert "val_<metric>" not in sort_by["description"] and "roc_auc" in sort_by["description"]
    assert "roc_auc" in sort_by["enum"]
