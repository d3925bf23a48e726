"""What a resource and a prompt are: a name, a read function and the read-only ports it needs.

Resources never register themselves with MCP: the server lists each spec, and every read goes
through the enforcement point (identify, decide `resources.role`, audit), which calls `read` off the
event loop with a `ReadContext`. `ctx.ports` holds read-only adapters only (server/read_ports.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policies import Principal


@dataclass(frozen=True)
class ReadContext:
    """Who reads, over which transport, and the read-only ports."""

    principal: Principal
    transport: str
    ports: Any


@dataclass(frozen=True)
class ResourceSpec:
    """A read-only resource. `uri` is a URI or an RFC 6570 template whose variables reach `read`
    as `params`. `read` blocks (it runs in a worker thread) and returns the served text; it may
    raise GovernanceError (shown with its rule id) or ResourceNotFoundError."""

    uri: str
    name: str
    title: str
    description: str
    read: Callable[[ReadContext, Mapping[str, str]], str]
    requires: tuple[str, ...] = ()  # read ports that must exist for the resource to be served
    mime_type: str = "application/json"


@dataclass(frozen=True)
class PromptSpec:
    """A prompt without arguments. `render` blocks and returns the text of one user message."""

    name: str
    title: str
    description: str
    render: Callable[[ReadContext], str]
    requires: tuple[str, ...] = ()
