"""Wires tools, resources and prompts into MCP so that every request goes through the Enforcer.

`GovernedServer` overrides the three entry points the SDK dispatches to (`call_tool`,
`read_resource`, `get_prompt`), serves `subscriptions/listen` (the SDK's handler) as a governed read,
and looks names up in its own tables of governed specs. The SDK's
managers are used for listing only: a tool, resource or prompt added around this module
(`@server.tool`, `@server.resource`, `add_prompt`) is listed at most, never served. Unknown names
are audited as `<unknown>` and refused with a protocol error. The SDK's argument model would
silently drop unknown fields; tool calls hand the untouched arguments to the enforcement point,
which validates strictly. Every list fits in one page, so no cursor is ever handed out: a list
request carrying one is answered -32602, as the spec asks, not with the first page again (which a
client paging on a stale cursor would take for the next page).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.prompts import Prompt
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.resources.templates import ResourceSecurityError
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, GetPromptResult, ListPromptsResult, ListResourcesResult, ListResourceTemplatesResult,
    ListToolsResult, PaginatedRequestParams, PromptMessage, SubscriptionsListenRequestParams, TextContent, ToolAnnotations,
)  # fmt: skip
from pydantic import Field

from resources.base import PromptSpec, ReadContext, ResourceSpec
from server.enforcement import Enforcer
from server.identity import Identifier
from server.results import ProtocolRefusal
from tools.base import ToolSpec

LISTEN = "subscriptions/listen"


async def _unreachable(ctx: Context) -> CallToolResult:  # pragma: no cover - replaced by GovernedTool.run
    raise RuntimeError("governed tools run through the enforcement point only")


def _unserved() -> str:  # pragma: no cover - GovernedServer reads specs, never the SDK's entries
    raise RuntimeError("resources and prompts are served through the enforcement point only")


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


def served(specs: Iterable[Any], ports: Any) -> list[Any]:
    """The specs whose required read ports exist."""
    return [s for s in specs if all(getattr(ports, name, None) is not None for name in s.requires)]


def _protocol_error(refused: ProtocolRefusal) -> MCPError:
    return MCPError(code=INVALID_PARAMS if refused.not_found else INTERNAL_ERROR, message=refused.text, data=refused.data)


def _refuse_cursor(params: PaginatedRequestParams | None) -> None:
    if params is not None and params.cursor is not None:
        raise MCPError(code=INVALID_PARAMS, message="invalid cursor: this server lists everything in one page and never hands out a cursor; list again without one")


class _OpeningSession:
    """The session as a listen handler sees it: its first notification (the stream's
    acknowledgement) is sent only after `opened()` returned."""

    def __init__(self, session: Any, opened: Callable[[], None]) -> None:
        self._session, self._opened = session, opened

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def send_notification(self, *args: Any, **kwargs: Any) -> Any:
        opened, self._opened = self._opened, None
        if opened is not None:
            opened()
        return await self._session.send_notification(*args, **kwargs)


def _opening(ctx: Any, opened: Callable[[], None]) -> Any:
    return dataclasses.replace(ctx, session=_OpeningSession(ctx.session, opened))


class GovernedServer(MCPServer):
    """An MCPServer that serves governed specs only, each request through the enforcement point."""

    def __init__(self, name: str, *, enforcer: Enforcer, identifier: Identifier, read_ports: Any, tools: Sequence[ToolSpec] = (),
                 resources: Sequence[ResourceSpec] = (), prompts: Sequence[PromptSpec] = (), max_listen_streams: int = 1024,
                 **kwargs: Any) -> None:  # fmt: skip
        governed = [governed_tool(spec, enforcer, identifier) for spec in tools]
        bus = kwargs.pop("subscriptions", None) or InMemorySubscriptionBus()  # the listen handler below fans this bus out
        super().__init__(name, tools=governed, subscriptions=bus, **kwargs)
        self._enforcer, self._identifier, self._read_ports = enforcer, identifier, read_ports
        self._governed_tools = {tool.name: tool for tool in governed}
        self._static: dict[str, ResourceSpec] = {}
        self._templated: dict[str, ResourceSpec] = {}
        self._prompt_specs: dict[str, PromptSpec] = {}
        for spec in resources:
            self._add_resource_spec(spec)
        for prompt in prompts:
            self._prompt_specs[prompt.name] = prompt
            self.add_prompt(Prompt.from_function(_unserved, name=prompt.name, title=prompt.title, description=prompt.description))
        self._govern_listen(bus, max_listen_streams)

    @property
    def enforcer(self) -> Enforcer:
        """The one enforcement point of every governed call and read."""
        return self._enforcer

    def _govern_listen(self, bus: SubscriptionBus, max_streams: int) -> None:
        """`subscriptions/listen` (a detached run's resource changed) is a read like any other:
        resources.role decides it under the name `subscriptions`, and its `read` record is appended
        as the SDK's handler acknowledges the stream, so a stream the handler refuses (past
        `max_streams` open at once) is recorded as refused, not ok. The events carry URIs only, but
        who listens is audited."""
        served = ListenHandler(bus, max_subscriptions=max_streams)

        async def listen(ctx: Any, params: SubscriptionsListenRequestParams) -> Any:
            principal, transport = self._identifier.principal_for(Context(request_context=ctx, mcp_server=self))
            asked = params.notifications.model_dump(mode="json", exclude_none=True)
            try:
                return await self._enforcer.stream({"resource": LISTEN}, "subscriptions", asked,
                                                   lambda opened: served(_opening(ctx, opened), params), principal, transport)
            except ProtocolRefusal as refused:
                raise _protocol_error(refused) from None

        self._lowlevel_server.add_request_handler(LISTEN, SubscriptionsListenRequestParams, listen)

    def _add_resource_spec(self, spec: ResourceSpec) -> None:
        """Listed through the SDK's manager; served from the tables here."""
        listing = {"name": spec.name, "title": spec.title, "description": spec.description, "mime_type": spec.mime_type}
        if "{" in spec.uri:
            template = self._resource_manager.add_template(_unserved, uri_template=spec.uri, security=self._resource_security, **listing)
            self._templated[template.uri_template] = spec
        else:
            self.add_resource(FunctionResource.from_function(_unserved, uri=spec.uri, **listing))
            self._static[spec.uri] = spec

    async def _handle_list_tools(self, ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        _refuse_cursor(params)
        return await super()._handle_list_tools(ctx, params)

    async def _handle_list_resources(self, ctx: Any, params: PaginatedRequestParams | None) -> ListResourcesResult:
        _refuse_cursor(params)
        return await super()._handle_list_resources(ctx, params)

    async def _handle_list_resource_templates(self, ctx: Any, params: PaginatedRequestParams | None) -> ListResourceTemplatesResult:
        _refuse_cursor(params)
        return await super()._handle_list_resource_templates(ctx, params)

    async def _handle_list_prompts(self, ctx: Any, params: PaginatedRequestParams | None) -> ListPromptsResult:
        _refuse_cursor(params)
        return await super()._handle_list_prompts(ctx, params)

    def _context(self, context: Context | None) -> Context:
        return context if context is not None else Context(mcp_server=self)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> CallToolResult:  # type: ignore[override]
        """Every call reaches the Enforcer; a name no governed tool has is audited and refused
        (MCPError -32602, as the spec answers an unknown tool)."""
        context = self._context(context)
        tool = self._governed_tools.get(name)
        if tool is None:
            try:
                await self._enforcer.unknown_tool(name, arguments or {}, self._identifier.context_for(context))
            except ProtocolRefusal as refused:
                raise _protocol_error(refused) from None
        return await tool.run(arguments or {}, context)

    def _match(self, uri: str) -> tuple[ResourceSpec, dict[str, Any]] | None:
        if uri in self._static:
            return self._static[uri], {}
        for template in self._resource_manager.list_templates():
            try:
                params = template.matches(uri)
            except ResourceSecurityError:
                return None  # a path-like value: nothing here serves it
            if params is not None and template.uri_template in self._templated:
                return self._templated[template.uri_template], params
        return None

    async def read_resource(self, uri: Any, context: Context | None = None) -> list[ReadResourceContents]:  # type: ignore[override]
        """Raises ResourceNotFoundError (unknown, or not found) or ResourceError (refused, failed)."""
        principal, transport = self._identifier.principal_for(self._context(context))
        found = self._match(str(uri))
        try:
            if found is None:
                await self._enforcer.unknown_read("resource", str(uri), principal, transport)
            spec, params = found  # type: ignore[misc]
            produce = functools.partial(spec.read, ReadContext(principal, transport, self._read_ports), params)
            text = await self._enforcer.read({"resource": spec.uri}, spec.name, params, produce, principal, transport)
        except ProtocolRefusal as refused:
            raise (ResourceNotFoundError if refused.not_found else ResourceError)(refused.text) from None
        return [ReadResourceContents(content=text, mime_type=spec.mime_type)]

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None, context: Context | None = None) -> GetPromptResult:  # type: ignore[override]
        """Raises MCPError (unknown, refused or failed)."""
        principal, transport = self._identifier.principal_for(self._context(context))
        spec = self._prompt_specs.get(name)
        try:
            if spec is None:
                await self._enforcer.unknown_read("prompt", name, principal, transport)
            produce = functools.partial(spec.render, ReadContext(principal, transport, self._read_ports))  # type: ignore[union-attr]
            text = await self._enforcer.read({"prompt": spec.name}, spec.name, arguments or {}, produce, principal, transport)  # type: ignore[union-attr]
        except ProtocolRefusal as refused:
            raise _protocol_error(refused) from None
        return GetPromptResult(description=spec.description, messages=[PromptMessage(role="user", content=TextContent(type="text", text=text))])  # type: ignore[union-attr]
