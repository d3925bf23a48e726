"""query_reasoning and cost_report through a real in-memory MCP client and through `mlgate
insights` on a real workspace whose sqlite MLflow store holds runs of this project and another."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.auth import TokenStore
from server.cli import main
from server.ports import Ports
from server.settings import Settings, load_settings
from tests.mcp_calls import call_tool

pytestmark = pytest.mark.anyio
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(ports: Ports, experiment: str, tags: dict[str, str], category: str, delta: float, outcome: str, tokens: int, cost: float) -> str:
    run_id = ports.tracking.start_run(experiment, {**tags, "principal": "codex", "mlgate.run_kind": "experiment", "outcome": outcome})
    ports.tracking.log_params(run_id, {"reasoning.hypothesis_category": category, "reasoning.change_description": f"{category} change", "tokens_used": tokens, "estimated_cost": cost})
    ports.tracking.log_metrics(run_id, {"metric_delta": delta, "val_roc_auc": 0.7 + delta})
    ports.tracking.end_run(run_id, "FINISHED")
    return run_id


@pytest.fixture
def history(ports: Ports) -> dict[str, Any]:
    standards = ports.standards.policy_config()["standards"]
    own_tags = {"client_name": standards["client_name"], "project_name": standards["project_name"]}
    own = ports.tracking.get_or_create_experiment(f"{own_tags['client_name']}/{own_tags['project_name']}")
    other = ports.tracking.get_or_create_experiment("bank_y/churn")
    return {
        "best": _run(ports, own, own_tags, "feature_engineering", 0.04, "confirmed", 1000, 0.5),
        "second": _run(ports, own, own_tags, "hyperparameter_tuning", 0.01, "neutral", 3000, 1.5),
        "foreign": _run(ports, other, {"client_name": "bank_y", "project_name": "churn"}, "model_family", 0.2, "confirmed", 9000, 9.0),
        "project": f"{own_tags['client_name']}/{own_tags['project_name']}",
    }


async def _call(settings: Settings, ports: Ports, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    return await call_tool(settings, tool, arguments, ports)


async def test_top_improvements_of_this_project_only(settings: Settings, ports: Ports, history: dict) -> None:
    is_error, payload = await _call(settings, ports, "query_reasoning", {"question": "top_improvements"})
    assert not is_error, payload
    assert [r["run_id"] for r in payload["rows"]] == [history["best"], history["second"]]
    assert payload["rows"][0]["change_description"] == "feature_engineering change" and payload["runs_read"] == 2


async def test_an_agent_cannot_query_other_projects(settings: Settings, ports: Ports, history: dict) -> None:
    is_error, payload = await _call(settings, ports, "query_reasoning", {"question": "confirm_rates_by_category", "scope": "all"})
    assert is_error and payload["rule_id"] == "queries.cross_project"
    assert "bank_y" not in json.dumps(payload)


async def test_experiments_to_target_needs_a_target(settings: Settings, ports: Ports, history: dict) -> None:
    is_error, payload = await _call(settings, ports, "query_reasoning", {"question": "experiments_to_target"})
    assert is_error and payload["rule_id"] == "input.schema" and "target" in payload["reason"]
    _, payload = await _call(settings, ports, "query_reasoning", {"question": "experiments_to_target", "target": 0.73})
    assert payload["rows"] == [{**payload["rows"][0], "project": history["project"], "reached": True, "experiments_to_target": 1, "run_id": history["best"]}]


async def test_cost_report_per_project_for_an_agent_is_its_own_project(settings: Settings, ports: Ports, history: dict) -> None:
    is_error, payload = await _call(settings, ports, "cost_report", {"group_by": "project"})
    assert not is_error, payload
    assert payload["total"] == {"runs": 2, "tokens_used": 4000, "estimated_cost": 2.0}
    assert [r["project"] for r in payload["rows"]] == [history["project"]]


def _operator_token(workspace: Path) -> str:
    return TokenStore(load_settings(workspace).state_dir).create("risk-op", "operator")


def test_cli_cost_across_projects_with_an_operator_token_draws_a_png(workspace: Path, history: dict, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLGATE_TOKEN", _operator_token(workspace))
    plot = tmp_path / "cost.png"
    assert main(["insights", "cost", "--workspace", str(workspace), "--scope", "all", "--group-by", "project", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["project", "runs", "tokens_used"]
    assert "bank_y/churn" in out and history["project"] in out
    assert plot.read_bytes().startswith(PNG_MAGIC) and plot.stat().st_size > 1000


def test_cli_without_a_token_reads_this_project_and_is_refused_the_rest(workspace: Path, history: dict, monkeypatch, capsys) -> None:
    monkeypatch.delenv("MLGATE_TOKEN", raising=False)
    assert main(["insights", "reasoning", "confirm_rates_by_category", "--workspace", str(workspace)]) == 0
    assert "feature_engineering" in capsys.readouterr().out
    assert main(["insights", "reasoning", "top_improvements", "--workspace", str(workspace), "--scope", "all"]) == 2
    assert "authenticated humans and operators" in capsys.readouterr().err


def test_cli_confirm_rates_plot_is_a_png(workspace: Path, history: dict, tmp_path: Path, capsys) -> None:
    plot = tmp_path / "rates.png"
    assert main(["insights", "reasoning", "confirm_rates_by_category", "--workspace", str(workspace), "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(PNG_MAGIC)
