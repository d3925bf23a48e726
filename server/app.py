"""Composition root: builds the GovernedServer with governed tools, resources and prompts."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata

from policies import Principal
from resources.base import PromptSpec, ResourceSpec
from server.enforcement import Enforcer
from server.identity import Identifier
from server.ports import Ports, build_ports
from server.read_ports import read_ports
from server.registration import GovernedServer, served
from server.settings import Settings, policy_limits
from tools.base import ToolSpec

INSTRUCTIONS = (
    "mlgate governs ML experimentation on this project. Every call is checked against the "
    "project's standards and recorded in an audit chain. Read the experiment briefing prompt "
    "first; a denial says which rule denied and what to do instead."
)


# Each module exposes `SPEC` (a ToolSpec) or `SPECS`; run_experiment, open_pr and promote join
# this list as they are built (their names are reserved in RESERVED_TOOL_NAMES).
TOOL_MODULES: tuple[str, ...] = ("load_dataset", "propose_config_change", "run_experiment", "decide_approval", "open_pr", "promote", "reproduce", "rollback", "lifecycle", "list_runs", "get_run", "cancel_run", "compare_runs", "check_drift", "query_reasoning", "cost_report")
RESERVED_TOOL_NAMES = ("load_dataset", "propose_config_change", "run_experiment", "open_pr", "promote")
# Each module exposes `SPECS`: ResourceSpecs and PromptSpecs (resources/base.py), read-only; who may
# read each is configs/policy.yaml `reads`.
RESOURCE_MODULES = ("standards", "policies", "datasets", "audit", "audit_own", "briefing", "skills", "runs", "model_cards")


def mlgate_version() -> str:
    """The installed distribution's version (serverInfo.version in every initialize answer)."""
    try:
        return metadata.version("mlgate")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def tool_specs() -> list[ToolSpec]:
    """Every governed tool, in the order they are listed to clients."""
    specs: list[ToolSpec] = []
    for name in TOOL_MODULES:
        module = importlib.import_module(f"tools.{name}")
        specs.extend(getattr(module, "SPECS", None) or [module.SPEC])
    return specs


def read_specs() -> list[ResourceSpec | PromptSpec]:
    """Every resource and prompt, in the order they are listed to clients."""
    return [spec for name in RESOURCE_MODULES for spec in importlib.import_module(f"resources.{name}").SPECS]


def build_server(settings: Settings, ports: Ports | None = None, *, auth: dict | None = None, local: Callable[[], Principal] | None = None) -> GovernedServer:
    """`local` gives the principal of calls without an HTTP request (a human's token holder on
    stdio, server/credentials.py); settings.local otherwise."""
    ports = ports or build_ports(settings)
    enforcer = Enforcer(ports.audit, ports.standards.policy_config, {"policy": policy_limits()}, calls_per_token=settings.http.max_open_requests_per_token)
    identifier = Identifier(local or settings.local, settings.transport, ports)
    readable = read_ports(ports)
    specs = served(read_specs(), readable)
    resources = [s for s in specs if isinstance(s, ResourceSpec)]
    prompts = [s for s in specs if isinstance(s, PromptSpec)]
    return GovernedServer("mlgate", version=mlgate_version(), instructions=INSTRUCTIONS, enforcer=enforcer, identifier=identifier, read_ports=readable,
                          tools=tool_specs(), resources=resources, prompts=prompts, subscriptions=ports.events, **(auth or {}))  # fmt: skip
