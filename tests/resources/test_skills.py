"""The skill prompts through a real in-memory MCP client on a real workspace: listed, filled in
with the committed standards, naming only tools the server really has, and audited like any read."""

from __future__ import annotations

import json
import re

import pytest
from mcp import Client

from resources.skills import SKILLS
from server.app import build_server
from server.ports import Ports
from server.settings import Settings

pytestmark = pytest.mark.anyio


async def _prompts(settings: Settings, ports: Ports) -> tuple[dict[str, str], set[str], set[str]]:
    async with Client(build_server(settings, ports)) as client:
        listed = {p.name for p in (await client.list_prompts()).prompts}
        tools = {t.name for t in (await client.list_tools()).tools}
        texts = {name: (await client.get_prompt(name)).messages[0].content.text for name in SKILLS}
    return texts, listed, tools


async def test_every_skill_is_listed_and_names_only_real_tools(settings: Settings, ports: Ports) -> None:
    texts, listed, tools = await _prompts(settings, ports)
    assert set(SKILLS) <= listed
    for name, text in texts.items():
        called = set(re.findall(r"`([a-z_]+)\(", text))
        assert called and called <= tools, (name, called - tools)


async def test_skills_carry_the_committed_standards(settings: Settings, ports: Ports) -> None:
    texts, _, _ = await _prompts(settings, ports)
    standards = ports.standards.policy_config()["standards"]
    assert f"validation {standards['gates']['primary_metric']}" in texts["new_feature"]
    assert str(standards["gates"]["min_primary_metric"]) in texts["new_feature"]
    assert all(model in texts["model_comparison"] for model in standards["allowed"]["model_types"])
    assert "{" not in texts["new_feature"] and '{"model.params.<name>": value}' in texts["hyperparameter_search"]


async def test_reading_a_skill_is_audited(settings: Settings, ports: Ports) -> None:
    await _prompts(settings, ports)
    ports.audit.sync()
    records = [json.loads(line) for line in settings.audit_path.read_bytes().splitlines()]
    reads = {r["prompt"]: r for r in records if r.get("kind") == "read" and r.get("prompt") in SKILLS}
    assert set(reads) == set(SKILLS)
    assert all(r["decision"] == "allow" and r["role"] == "agent" for r in reads.values())
