"""Who is asking. Roles are governance: the same on every transport."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["agent", "human", "operator"]
ROLES: tuple[Role, ...] = ("agent", "human", "operator")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def is_human(self) -> bool:
        return self.role in ("human", "operator")
