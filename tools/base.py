"""What a governed tool is: an input model, a fact gatherer, a policy set and an executor.

Tools never register themselves with MCP and never reach an adapter on their own: the server's
enforcement point calls `gather`, decides with `rules`, audits, and only then calls `execute`,
handing each the `CallContext` that carries the adapters (`ports`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from policies import Principal, Rule, Verdict

In = TypeVar("In", bound=BaseModel)
Facts = TypeVar("Facts")

Progress = Callable[[float, float | None, str | None], Awaitable[None]]


async def _no_progress(_done: float, _total: float | None, _message: str | None) -> None:
    return None


class StrictInput(BaseModel):
    """Base of every tool input model: unknown fields are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass
class CallContext:
    """Everything a tool call may use. `ports` holds the adapters (see server/ports.py)."""

    principal: Principal
    transport: str
    ports: Any
    config: Mapping[str, Any] = field(default_factory=dict)
    progress: Progress = _no_progress
    audit_refs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolSpec(Generic[In, Facts]):
    """A governed tool. `gather` reads (may raise GovernanceError = deny); `execute` acts."""

    name: str
    title: str
    description: str
    input_model: type[In]
    rules: tuple[Rule, ...]
    gather: Callable[[In, CallContext], Facts]
    execute: Callable[[In, Facts, CallContext], Awaitable[dict[str, Any]]]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    preview: Callable[[In, Facts], dict[str, Any]] | None = None
    on_deny: Callable[[In, Facts, Verdict, CallContext], dict[str, Any]] | None = None
