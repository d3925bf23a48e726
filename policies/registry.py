"""The rule registry, complete: importing this module imports every rule module."""

from __future__ import annotations

import importlib
import pkgutil

import policies
from policies.decision import REGISTRY, Rule


def load_all() -> dict[str, Rule]:
    for module in pkgutil.iter_modules(policies.__path__):
        importlib.import_module(f"policies.{module.name}")
    return REGISTRY


def describe() -> list[dict[str, str]]:
    """id, source and description of every rule (the policy registry resource)."""
    return [{"id": r.id, "source": r.source, "description": r.description} for r in sorted(load_all().values(), key=lambda r: r.id)]
