"""Composition root: builds the MCPServer with governed tools, resources and prompts."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from server.enforcement import Enforcer
from server.identity import Identifier
from server.ports import Ports, build_ports
from server.registration import governed_tool
from server.settings import Settings
from tools.base import ToolSpec

INSTRUCTIONS = (
    "mlgate governs ML experimentation on this project. Every call is checked against the "
    "project's standards and recorded in an audit chain. Read the experiment briefing prompt "
    "first; a denial says which rule denied and what to do instead."
)


def tool_specs() -> list[ToolSpec]:
    """Every governed tool, in the order they are listed to clients."""
    specs: list[ToolSpec] = []
    return specs


def build_server(settings: Settings, ports: Ports | None = None, *, auth: dict | None = None) -> MCPServer:
    ports = ports or build_ports(settings)
    enforcer = Enforcer(ports.audit, ports.standards.policy_config)
    identifier = Identifier(settings.local, settings.transport, ports)
    tools = [governed_tool(spec, enforcer, identifier) for spec in tool_specs()]
    server = MCPServer("mlgate", instructions=INSTRUCTIONS, tools=tools, **(auth or {}))
    return server
