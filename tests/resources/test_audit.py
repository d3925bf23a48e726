"""The audit tail resource through a real in-memory MCP client."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from resources.audit import TAIL_URI
from server.app import build_server
from server.ports import build_ports
from server.settings import Settings, load_settings, policy_limits

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(workspace) -> Settings:
    """The full tail is for humans and operators (configs/policy.yaml reads.audit_tail)."""
    return load_settings(workspace, transport="memory", local_principal="ops", local_role="operator")


async def _read_tail(server) -> dict:
    async with Client(server) as client:
        result = await client.read_resource(TAIL_URI)
    return json.loads(result.contents[0].text)


async def test_audit_tail_lists_the_latest_records_oldest_first(settings: Settings) -> None:
    ports = build_ports(settings)
    limit = policy_limits()["audit"]["tail_default"]
    for n in range(limit + 3):
        ports.audit.append({"kind": "decision", "tool": "load_dataset", "n": n})
    tail = await _read_tail(build_server(settings, ports))
    assert tail["count"] == limit
    assert [r["n"] for r in tail["records"]] == list(range(3, limit + 3))
    assert [r["seq"] for r in tail["records"]] == sorted(r["seq"] for r in tail["records"])
    ports.audit.close()


async def test_audit_tail_of_a_fresh_workspace_holds_only_its_first_standards_acknowledgement(settings: Settings) -> None:
    ports = build_ports(settings)
    tail = await _read_tail(build_server(settings, ports))
    assert [r["kind"] for r in tail["records"]] == ["standards_acknowledged"] and tail["count"] == 1
    ports.audit.close()


async def test_audit_tail_is_listed_as_a_json_resource(settings: Settings) -> None:
    ports = build_ports(settings)
    async with Client(build_server(settings, ports)) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed[TAIL_URI].mime_type == "application/json"
    ports.audit.close()


async def test_an_agent_listing_resources_learns_the_tail_is_not_its_to_read(workspace) -> None:
    """resources/list shows the tail to an agent too, and its refusal says 'read what your role may
    read (resources/list)': the listing says who reads it and where an agent's own records are."""
    agent = load_settings(workspace, transport="memory")
    async with Client(build_server(agent)) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    description = listed[TAIL_URI].description
    assert "humans and operators" in description and "mlgate://audit/mine" in description
