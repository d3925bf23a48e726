"""One tool call through the real in-memory MCP client, as the settings' principal (its stdio
server's principal): (is_error, structured content). Shared by the tool and security tests."""

from __future__ import annotations

import json
from typing import Any

from mcp import Client

from server.app import build_server
from server.ports import Ports, build_ports
from server.settings import Settings


async def call_tool(settings: Settings, tool: str, arguments: dict[str, Any], ports: Ports | None = None) -> tuple[bool, dict[str, Any]]:
    """With `ports`, the caller's adapters (left open); without, fresh ones closed after the call."""
    own = ports is None
    ports = ports or build_ports(settings)
    try:
        async with Client(build_server(settings, ports)) as client:
            result = await client.call_tool(tool, arguments)
    finally:
        if own:
            ports.audit.close()
    return result.is_error, result.structured_content or {}


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 and JavaScript's JSON.parse read it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)
