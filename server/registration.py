"""Wires a ToolSpec into MCP so that every call goes through the Enforcer with its raw arguments.

The SDK's own argument model would silently drop unknown fields; `GovernedTool.run` bypasses it
and hands the untouched arguments to the enforcement point, which validates them strictly.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from server.enforcement import Enforcer
from server.identity import Identifier
from tools.base import ToolSpec


async def _unreachable(ctx: Context) -> CallToolResult:  # pragma: no cover - replaced by GovernedTool.run
    raise RuntimeError("governed tools run through the enforcement point only")


class GovernedTool(Tool):
    spec: Any = Field(default=None, exclude=True)
    enforcer: Any = Field(default=None, exclude=True)
    identifier: Any = Field(default=None, exclude=True)

    async def run(self, arguments: dict[str, Any], context: Context, convert_result: bool = False) -> Any:
        call_ctx = self.identifier.context_for(context)
        return await self.enforcer.call(self.spec, arguments, call_ctx)


def annotations_for(spec: ToolSpec) -> ToolAnnotations:
    return ToolAnnotations(
        title=spec.title,
        read_only_hint=spec.read_only,
        destructive_hint=spec.destructive,
        idempotent_hint=spec.idempotent,
        open_world_hint=False,
    )


def input_schema(spec: ToolSpec) -> dict[str, Any]:
    schema = spec.input_model.model_json_schema(by_alias=True)
    schema.setdefault("additionalProperties", False)
    return schema


def governed_tool(spec: ToolSpec, enforcer: Enforcer, identifier: Identifier) -> GovernedTool:
    tool = GovernedTool.from_function(_unreachable, name=spec.name, title=spec.title, description=spec.description, annotations=annotations_for(spec))
    tool.parameters = input_schema(spec)
    tool.spec, tool.enforcer, tool.identifier = spec, enforcer, identifier
    return tool
