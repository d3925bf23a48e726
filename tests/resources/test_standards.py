"""The standards resource through a real in-memory MCP client on a real workspace."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from resources.standards import STANDARDS_URI
from server.app import build_server
from server.git import GitRepo
from server.ports import Ports
from server.settings import Settings

pytestmark = pytest.mark.anyio
STANDARDS = "configs/project_standards.yaml"


async def read_standards(settings: Settings, ports: Ports) -> dict:
    async with Client(build_server(settings, ports)) as client:
        result = await client.read_resource(STANDARDS_URI)
    return json.loads(result.contents[0].text)


def committed(workspace: Path) -> bytes:
    return GitRepo(workspace).show("main", STANDARDS)


async def test_standards_resource_is_the_committed_yaml_with_its_sha256(settings: Settings, ports: Ports, workspace: Path) -> None:
    document = await read_standards(settings, ports)
    assert document["yaml"].encode() == committed(workspace)
    assert document["sha256"] == hashlib.sha256(committed(workspace)).hexdigest()
    assert document["ref"] == "main" and document["drift"] is False


async def test_working_tree_edit_is_reported_as_drift_and_not_served(settings: Settings, ports: Ports, workspace: Path) -> None:
    (workspace / STANDARDS).write_text("version: 1\ngates: {min_primary_metric: 0.0}\n")
    document = await read_standards(settings, ports)
    assert document["drift"] is True
    assert document["yaml"].encode() == committed(workspace) and "min_primary_metric: 0.70" in document["yaml"]


async def test_standards_committed_on_another_branch_are_not_in_force(settings: Settings, ports: Ports, workspace: Path) -> None:
    repo = GitRepo(workspace)
    repo.run("switch", "-q", "-c", "agent/looser")
    path = workspace / STANDARDS
    path.write_text(path.read_text().replace("min_primary_metric: 0.70", "min_primary_metric: 0.10"))
    repo.commit_paths([STANDARDS], "looser gates")
    document = await read_standards(settings, ports)
    assert "min_primary_metric: 0.70" in document["yaml"] and document["drift"] is True


async def test_standards_missing_on_main_is_an_error_saying_what_to_do(settings: Settings, ports: Ports, workspace: Path) -> None:
    repo = GitRepo(workspace)
    repo.run("rm", "-q", "--", STANDARDS)
    repo.run("commit", "-q", "-m", "drop standards")
    async with Client(build_server(settings, ports)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource(STANDARDS_URI)
    assert "standards.available" in str(failed.value) and "commit the standards to main" in str(failed.value)


async def test_standards_resource_is_listed_as_json(settings: Settings, ports: Ports) -> None:
    async with Client(build_server(settings, ports)) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed[STANDARDS_URI].mime_type == "application/json"
