"""The experiment_briefing prompt through a real in-memory MCP client on a real workspace."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from mcp import Client

from resources.briefing import render_rules
from server.app import build_server
from server.git import GitRepo
from server.ports import Ports
from server.settings import Settings
from tests.acknowledge import accept_standards

pytestmark = pytest.mark.anyio
STANDARDS = "configs/project_standards.yaml"
CHECKLIST = ("Missing data", "Target leakage", "Split before fit", "Temporal validation", "Class imbalance", "Protected attributes and fairness", "PII is never a feature", "Seeds and determinism")
TOOLS = ("load_dataset(", "propose_config_change(", "run_experiment(", "open_pr(", "promote(")


async def get_briefing(settings: Settings, ports: Ports) -> str:
    async with Client(build_server(settings, ports)) as client:
        result = await client.get_prompt("experiment_briefing")
    assert len(result.messages) == 1 and result.messages[0].role == "user"
    return result.messages[0].content.text


def commit_standards(workspace: Path, old: str, new: str) -> None:
    path = workspace / STANDARDS
    path.write_text(path.read_text().replace(old, new))
    GitRepo(workspace).commit_paths([STANDARDS], "standards change reviewed by the team")


async def test_briefing_is_listed_as_a_prompt(settings: Settings, ports: Ports) -> None:
    async with Client(build_server(settings, ports)) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    assert "risk checklist" in prompts["experiment_briefing"].description


async def test_briefing_carries_the_rules_the_workflow_and_the_risk_checklist(settings: Settings, ports: Ports) -> None:
    text = await get_briefing(settings, ports)
    assert all(tool in text for tool in TOOLS)
    assert all(item in text for item in CHECKLIST)
    assert "rule_id" in text and "remediation" in text and "mlgate approvals approve ID" in text
    assert text.index("## Rules") < text.index("## Workflow") < text.index("## Modelling risk checklist")


async def test_briefing_shows_how_to_change_the_model_type_in_one_change(settings: Settings, ports: Ports) -> None:
    # a dotted model.type change keeps the old type's params, which the new type refuses
    assert '`{"model": {"type": "torch_mlp", "params": {}}}`' in await get_briefing(settings, ports)


async def test_briefing_explains_the_champion_comparison_a_run_on_new_data_carries(settings: Settings, ports: Ports) -> None:
    text = await get_briefing(settings, ports)
    assert "`champion_comparison`" in text and "same rows" in text


async def test_briefing_fills_in_the_committed_standards(settings: Settings, ports: Ports, workspace: Path) -> None:
    text = await get_briefing(settings, ports)
    sha = hashlib.sha256(GitRepo(workspace).show("main", STANDARDS)).hexdigest()
    assert f"committed on `main`, sha256 `{sha}`" in text
    assert "- Label: target `default`, positive class `1`" in text
    assert "- Time column: `application_date` (use `split.strategy: temporal_split`)" in text
    assert "`gender`, `age_band`" in text and "`customer_id`, `full_name`, `email`" in text
    assert "  - `min_primary_metric`: `0.7`" in text and "  - `features.use_protected_attributes`: `false`" in text
    assert "Drift" not in text


async def test_briefing_states_the_reasoning_minimum_the_server_enforces(settings: Settings, ports: Ports) -> None:
    """A reasoning the schema accepts (one character) is denied by reasoning.required_for_agents:
    the briefing gives the minimum before the first denial does."""
    from server.settings import policy_limits

    minimum = policy_limits()["reasoning"]
    text = await get_briefing(settings, ports)
    assert f"at least {minimum['min_chars']} characters and {minimum['min_words']} distinct words" in text


async def test_briefing_follows_standards_changed_on_main(settings: Settings, ports: Ports, workspace: Path) -> None:
    commit_standards(workspace, "time_column: application_date", "time_column: null")
    commit_standards(workspace, "  - age_band\n", "  - age_band\n  - marital_status\n")
    unacknowledged = await get_briefing(settings, ports)
    assert "Unavailable [standards.acknowledged]" in unacknowledged and "time_column" in unacknowledged
    accept_standards(settings)
    text = await get_briefing(settings, ports)
    assert "- Time column: none (no time column: stratified k-fold is the default)" in text
    assert "`gender`, `age_band`, `marital_status`" in text


async def test_briefing_reports_drift_and_keeps_the_committed_values(settings: Settings, ports: Ports, workspace: Path) -> None:
    path = workspace / STANDARDS
    path.write_text(path.read_text().replace("min_primary_metric: 0.70", "min_primary_metric: 0.10"))
    text = await get_briefing(settings, ports)
    assert "**Drift:**" in text and "`min_primary_metric`: `0.7`" in text and "0.1`" not in text


async def test_briefing_without_committed_standards_says_so_and_still_gives_the_rules(settings: Settings, ports: Ports, workspace: Path) -> None:
    repo = GitRepo(workspace)
    repo.run("rm", "-q", "--", STANDARDS)
    repo.run("commit", "-q", "-m", "drop standards")
    text = await get_briefing(settings, ports)
    assert "Unavailable [standards.available]" in text and "What to do: commit the standards to main" in text
    assert "## Modelling risk checklist" in text


def test_briefing_prose_is_the_same_text_the_workspace_agents_md_was_made_from(workspace: Path) -> None:
    names = {"client_name": "demo-bank", "project_name": "credit-default"}
    assert render_rules(names) == (workspace / "AGENTS.md").read_text()
