"""Composition root: builds the MCPServer with governed tools, resources and prompts."""

from __future__ import annotations

import importlib

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


# Each module exposes `SPEC` (a ToolSpec) or `SPECS`; run_experiment, open_pr and promote join
# this list as they are built (their names are reserved in RESERVED_TOOL_NAMES).
TOOL_MODULES: tuple[str, ...] = ("load_dataset", "propose_config_change", "run_experiment", "decide_approval", "open_pr", "promote", "reproduce", "rollback", "list_runs", "get_run", "compare_runs")
RESERVED_TOOL_NAMES = ("load_dataset", "propose_config_change", "run_experiment", "open_pr", "promote")
# Each module exposes `register(server, ports)` adding its resources and prompts.
RESOURCE_MODULES = ("standards", "policies", "datasets", "audit", "briefing", "runs", "model_cards")


def tool_specs() -> list[ToolSpec]:
    """Every governed tool, in the order they are listed to clients."""
    specs: list[ToolSpec] = []
    for name in TOOL_MODULES:
        module = importlib.import_module(f"tools.{name}")
        specs.extend(getattr(module, "SPECS", None) or [module.SPEC])
    return specs


def build_server(settings: Settings, ports: Ports | None = None, *, auth: dict | None = None) -> MCPServer:
    ports = ports or build_ports(settings)
    enforcer = Enforcer(ports.audit, ports.standards.policy_config)
    identifier = Identifier(settings.local, settings.transport, ports)
    tools = [governed_tool(spec, enforcer, identifier) for spec in tool_specs()]
    server = MCPServer("mlgate", instructions=INSTRUCTIONS, tools=tools, **(auth or {}))
    for name in RESOURCE_MODULES:
        importlib.import_module(f"resources.{name}").register(server, ports)
    return server
