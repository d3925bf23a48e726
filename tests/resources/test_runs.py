"""The run resources through a real in-memory MCP client: runs logged as run_experiment logs them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from resources.runs import RECENT, RUNS_URI
from server.app import build_server
from tests.mcp_calls import strict_json
from tests.tools.runs_lab import RunsLab, build_runs_lab, foreign_run, logged_run

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> RunsLab:
    return build_runs_lab(tmp_path_factory.mktemp("run-resources"))


@pytest.fixture(scope="module")
def runs(lab: RunsLab) -> dict[str, str]:
    made = {"older": logged_run(lab, primary=0.72), "newer": logged_run(lab, primary=0.78, outcome="confirmed"), "foreign": foreign_run(lab)}
    lab.ports.tracking.log_json_artifact(made["newer"], "evaluation_report.json", {"comparison": {"best_prior_run_id": made["older"], "best_prior_value": 0.72}, "gates": []})
    return made


async def read(lab: RunsLab, uri: str) -> dict[str, Any]:
    async with Client(build_server(lab.settings, lab.ports)) as client:
        result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)


async def read_error(lab: RunsLab, uri: str) -> str:
    async with Client(build_server(lab.settings, lab.ports)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource(uri)
    return str(failed.value)


async def test_recent_runs_are_this_projects_newest_first(lab: RunsLab, runs: dict[str, str]) -> None:
    document = await read(lab, RUNS_URI)
    assert [r["run_id"] for r in document["runs"]] == [runs["newer"], runs["older"]] and document["count"] == 2
    assert document["runs"][0]["primary_metric"]["value"] == 0.78 and document["runs"][0]["outcome"] == "confirmed"


async def test_one_run_reads_like_get_run_with_its_artifacts_and_comparison(lab: RunsLab, runs: dict[str, str]) -> None:
    run = await read(lab, f"mlgate://runs/{runs['newer']}")
    assert run["run_id"] == runs["newer"] and run["experiment"] == "demo-bank/credit-default"
    assert run["comparison"]["best_prior_run_id"] == runs["older"] and run["artifacts"] == ["evaluation_report.json"]
    assert run["metrics"]["roc_auc"]["ci95"] == {"low": pytest.approx(0.76), "high": pytest.approx(0.80)}
    async with Client(build_server(lab.settings, lab.ports)) as client:
        is_error, tool = (lambda r: (r.is_error, r.structured_content))(await client.call_tool("get_run", {"run_id": runs["newer"]}))
    assert not is_error and tool == run


async def test_a_run_of_another_project_is_not_found(lab: RunsLab, runs: dict[str, str]) -> None:
    text = await read_error(lab, f"mlgate://runs/{runs['foreign']}")
    assert "[runs.same_project]" in text and f"no run {runs['foreign']}" in text and "list_runs" in text


@pytest.mark.parametrize("bad", ["0" * 32, "ABC", "A" * 32])
async def test_unknown_or_malformed_ids_are_not_found(lab: RunsLab, runs: dict[str, str], bad: str) -> None:
    assert "tracking.run_not_found" in await read_error(lab, f"mlgate://runs/{bad}")


@pytest.mark.parametrize("bad", ["..", "%2E%2E%2Fetc", "%2Fetc%2Fpasswd"])
async def test_path_like_ids_are_refused(lab: RunsLab, runs: dict[str, str], bad: str) -> None:
    assert "mlgate://runs/" in await read_error(lab, f"mlgate://runs/{bad}")


async def test_the_run_template_is_advertised(lab: RunsLab) -> None:
    async with Client(build_server(lab.settings, lab.ports)) as client:
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
    assert "mlgate://runs/{run_id}" in templates and RUNS_URI in uris and RECENT == 20


async def test_a_run_with_an_undefined_metric_reads_as_strict_json_with_the_metric_null(tmp_path: Any) -> None:
    lab = build_runs_lab(tmp_path)
    run_id = logged_run(lab)
    lab.ports.tracking.log_metrics(run_id, {"val_f1": float("nan")})  # F1 of a fold without a positive prediction
    async with Client(build_server(lab.settings, lab.ports)) as client:
        one = (await client.read_resource(f"mlgate://runs/{run_id}")).contents[0].text
        recent = (await client.read_resource(RUNS_URI)).contents[0].text
    run = strict_json(one)
    assert run["metrics"]["f1"]["value"] is None
    assert strict_json(recent)["runs"][0]["run_id"] == run_id
