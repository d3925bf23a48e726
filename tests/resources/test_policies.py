import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from policies.registry import load_all
from server.app import build_server
from server.settings import Settings

pytestmark = pytest.mark.anyio


async def test_the_registry_resource_lists_every_rule_with_its_source(settings: Settings, workspace: Path) -> None:
    async with Client(build_server(settings)) as client:
        contents = (await client.read_resource("mlgate://policies")).contents
    rules = json.loads(contents[0].text)
    assert {r["id"] for r in rules} == set(load_all())
    assert all(r["source"] and r["description"] for r in rules)


async def test_one_rule_explains_a_denials_rule_id(settings: Settings, workspace: Path) -> None:
    async with Client(build_server(settings)) as client:
        contents = (await client.read_resource("mlgate://policies/config.protected_fields")).contents
    assert json.loads(contents[0].text)["id"] == "config.protected_fields"


@pytest.mark.parametrize("rule_id", ["no.such_rule", "CONFIG.PROTECTED_FIELDS"])
async def test_an_unknown_rule_id_is_a_clear_not_found(settings: Settings, workspace: Path, rule_id: str) -> None:
    async with Client(build_server(settings)) as client:
        with pytest.raises(MCPError, match="lists every rule id"):
            await client.read_resource(f"mlgate://policies/{rule_id}")


async def test_a_traversal_attempt_is_refused(settings: Settings, workspace: Path) -> None:
    async with Client(build_server(settings)) as client:
        with pytest.raises(MCPError):
            await client.read_resource("mlgate://policies/..%2F..%2Fetc%2Fpasswd")
