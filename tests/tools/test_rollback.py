"""rollback_alias through the real server (in-memory MCP client) on a real sqlite MLflow registry,
with the alias history written by promotions; the audit chain records every decision."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.enforcement import Enforcer
from server.ports import Ports, build_ports
from server.settings import Settings, load_settings
from tests.credentials import approver
from tests.server.registry_helpers import MODEL, promoted
from tools.base import CallContext
from tools.rollback import SPEC as ROLLBACK

pytestmark = pytest.mark.anyio


@pytest.fixture
def ports(settings: Settings) -> Ports:
    return build_ports(settings)


@pytest.fixture
def experiment(ports: Ports) -> str:
    return ports.tracking.get_or_create_experiment("demo-bank/credit-default")


HUMAN = object()  # stands for alice calling with her human token (see roll_back)


def human(settings: Settings) -> object:
    return HUMAN


async def roll_back(settings: Settings | object, ports: Ports, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    """As the agent (in-memory client of `settings`), or as alice with a verified human token: the
    principal the HTTP identifier builds from her bearer token, through the same enforcement point."""
    if settings is not HUMAN:
        async with Client(build_server(settings, ports)) as client:
            result = await client.call_tool("rollback_alias", {"model": MODEL, **arguments})
        return result.is_error, result.structured_content
    context = CallContext(principal=approver(ports.settings.state_dir, "alice"), transport="streamable-http", ports=ports)
    result = await Enforcer(ports.audit, ports.standards.policy_config).call(ROLLBACK, {"model": MODEL, **arguments}, context)
    return result.is_error, result.structured_content


async def test_rollback_restores_the_previous_alias(settings: Settings, ports: Ports, experiment: str) -> None:
    (first, v1), (_, v2) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    failed, content = await roll_back(human(settings), ports, note="v2 misbehaves in shadow scoring")
    assert not failed, content
    assert (content["from_version"], content["to_version"], content["run_id"]) == (v2, v1, first)
    assert ports.registry.alias_version(MODEL, "champion") == v1
    assert "mlgate.rolled_back.champion" in ports.tracking.client.get_model_version(MODEL, v2).tags
    event = ports.registry.events(MODEL, "champion")[-1]
    assert event["action"] == "rollback" and event["by"] == "alice" and event["note"] == "v2 misbehaves in shadow scoring"
    assert content["stage_changes"] == [{"version": v2, "from": "champion", "to": "archived"}, {"version": v1, "from": "archived", "to": "champion"}]
    assert (ports.registry.stage(MODEL, v1), ports.registry.stage(MODEL, v2)) == ("champion", "archived")
    outcome = [r for r in ports.audit.tail(5) if r.get("tool") == "rollback_alias"][-1]
    assert outcome["lifecycle"] == f"v{v2}:champion->archived,v{v1}:archived->champion"


async def test_successive_rollbacks_walk_back_the_history(settings: Settings, ports: Ports, experiment: str) -> None:
    (_, v1), (_, v2), _ = promoted(ports.registry, ports.tracking, experiment, "candidate", 3)
    assert (await roll_back(human(settings), ports, alias="candidate"))[1]["to_version"] == v2
    assert (await roll_back(human(settings), ports, alias="candidate"))[1]["to_version"] == v1
    failed, content = await roll_back(human(settings), ports, alias="candidate")
    assert failed and content["rule_id"] == "promotion.rollback_available"
    assert ports.registry.alias_version(MODEL, "candidate") == v1


async def test_agents_cannot_roll_back(settings: Settings, ports: Ports, experiment: str) -> None:
    _, (_, v2) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    failed, content = await roll_back(settings, ports)
    assert failed and content["rule_id"] == "role.agents_cannot_rollback"
    assert ports.registry.alias_version(MODEL, "champion") == v2


async def test_a_server_started_as_a_human_cannot_roll_back_without_a_token(settings: Settings, ports: Ports, experiment: str) -> None:
    _, (_, v2) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    stdio_human = load_settings(settings.workspace, transport="memory", local_principal="alice", local_role="human")
    failed, content = await roll_back(stdio_human, ports)
    assert failed and content["rule_id"] == "role.approver_authenticated"
    assert ports.registry.alias_version(MODEL, "champion") == v2


async def test_rollback_without_a_previous_version_is_denied(settings: Settings, ports: Ports, experiment: str) -> None:
    promoted(ports.registry, ports.tracking, experiment, "champion", 1)
    failed, content = await roll_back(human(settings), ports)
    assert failed and content["rule_id"] == "promotion.rollback_available" and "no previous version" in content["reason"]


async def test_rollback_refuses_an_alias_moved_outside_mlgate(settings: Settings, ports: Ports, experiment: str) -> None:
    (_, v1), _, _ = promoted(ports.registry, ports.tracking, experiment, "champion", 3)
    ports.tracking.set_alias(MODEL, "champion", v1)
    failed, content = await roll_back(human(settings), ports)
    assert failed and content["rule_id"] == "promotion.rollback_available" and "moved outside mlgate" in content["remediation"]
    assert ports.registry.alias_version(MODEL, "champion") == v1


async def test_dry_run_shows_the_version_it_would_return_to(settings: Settings, ports: Ports, experiment: str) -> None:
    (_, v1), (_, v2) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    failed, content = await roll_back(human(settings), ports, dry_run=True)
    assert not failed and (content["current_version"], content["would_return_to"]) == (v2, v1)
    assert ports.registry.alias_version(MODEL, "champion") == v2


async def test_every_rollback_decision_and_outcome_is_audited(settings: Settings, ports: Ports, experiment: str) -> None:
    (first, _), _ = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    await roll_back(settings, ports)
    await roll_back(human(settings), ports)
    records = [r for r in ports.audit.tail(10) if r.get("tool") == "rollback_alias"]
    assert [(r["principal"], r["kind"], r.get("decision") or r.get("status")) for r in records] == [
        ("local-agent", "decision", "deny"), ("alice", "decision", "allow"), ("alice", "outcome", "ok"),
    ]  # fmt: skip
    assert records[-1]["run_id"] == first
