"""Every governed tool, fuzzed through the in-memory MCP client and over streamable HTTP: inputs
generated from its input schema and mutated (tests/reliability/inputs.py). No call may crash the
server, answer without a rule id, leak a traceback or a server path, or go unaudited; the server
answers afterwards and the audit chain verifies. bench/reliability.py runs the full size (10 000
inputs per tool); here a few hundred per tool keep the suite inside CI's time."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from server.app import build_server, tool_specs
from server.audit import verify
from server.auth import TokenStore
from server.ports import Ports
from server.registration import input_schema
from server.settings import Settings
from tests.e2e.transports import bearer, mlgate_http
from tests.reliability.checks import problems
from tests.reliability.inputs import fuzzed_arguments

pytestmark = pytest.mark.anyio
PER_TOOL = int(os.environ.get("MLGATE_FUZZ_PER_TOOL", "60"))
HTTP_PER_TOOL = int(os.environ.get("MLGATE_FUZZ_HTTP_PER_TOOL", "15"))
CALL_TIMEOUT_S = 60


def private_paths(settings: Settings) -> list[str]:
    return [str(settings.workspace), str(settings.state_dir), str(Path(__file__).resolve().parents[2])]


def audit_lines(settings: Settings) -> int:
    return len(settings.audit_path.read_bytes().splitlines())


async def test_fuzzed_inputs_never_crash_leak_or_go_unaudited_in_memory(settings: Settings, ports: Ports) -> None:
    found, calls = [], 0
    before = audit_lines(settings)
    async with Client(build_server(settings, ports)) as client:
        for spec in tool_specs():
            for index, arguments in enumerate(fuzzed_arguments(input_schema(spec), PER_TOOL, seed=index_seed(spec.name))):
                with anyio.fail_after(CALL_TIMEOUT_S):
                    result = await client.call_tool(spec.name, arguments)
                calls += 1
                found += [f"{spec.name}#{index}: {p}" for p in problems(result, private_paths(settings))]
        assert {t.name for t in (await client.list_tools()).tools} >= {s.name for s in tool_specs()}
    ports.audit.sync()
    assert found == []
    assert audit_lines(settings) - before >= calls
    assert verify(settings.audit_path).ok


async def test_fuzzed_inputs_over_http_get_no_5xx_and_the_server_keeps_answering(settings: Settings) -> None:
    token = TokenStore(settings.state_dir).create("fuzz-agent", "agent")
    statuses: list[int] = []
    with mlgate_http(settings) as url:
        async with httpx2.AsyncClient(headers={**bearer(token), "Accept": "application/json, text/event-stream"}, timeout=60.0) as http:
            session = await _open_session(http, url)
            for spec in tool_specs():
                for index, arguments in enumerate(fuzzed_arguments(input_schema(spec), HTTP_PER_TOOL, seed=index_seed(spec.name))):
                    reply = await http.post(f"{url}/mcp", json=_call(index, spec.name, arguments), headers=session)
                    statuses.append(reply.status_code)
                    assert "Traceback" not in reply.text and str(settings.workspace) not in reply.text
            final = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": "last", "method": "tools/list"}, headers=session)
    assert [s for s in statuses if s >= 500] == []
    assert final.status_code == 200 and "load_dataset" in final.text


def index_seed(name: str) -> int:
    return sum(map(ord, name))


def _call(index: int, name: str, arguments: dict) -> dict:
    return {"jsonrpc": "2.0", "id": index, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


async def _open_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}}
    reply = await http.post(f"{url}/mcp", json=init)
    session = {"mcp-session-id": reply.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session
