"""Who is asking. Roles are governance: the same on every transport."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["agent", "human", "operator"]
ROLES: tuple[Role, ...] = ("agent", "human", "operator")


@dataclass(frozen=True)
class Principal:
    """`credential` names the verified token the principal authenticated with (`<token name>:<id>`);
    None for a principal the server was merely started as (stdio, in-memory)."""

    name: str
    role: Role
    credential: str | None = None

    @property
    def is_human(self) -> bool:
        return self.role in ("human", "operator")
