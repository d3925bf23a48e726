"""Shared fixtures: real workspaces (copier template + git) in tmp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings, load_settings
from server.workspace import init_workspace


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return init_workspace(tmp_path / "ws")


@pytest.fixture
def settings(workspace: Path) -> Settings:
    return load_settings(workspace, transport="memory")


@pytest.fixture
def ports(settings: Settings) -> Iterator[Any]:
    """The real adapters of `settings` (server.ports.Ports), their audit chain closed afterwards.
    Imported here, not at the top: policy-only runs stay free of the server's imports (2.4 s)."""
    from server.ports import build_ports

    ports = build_ports(settings)
    yield ports
    ports.audit.close()


# --- policy mutation (bench/mutation.py): `--mutate-rule ID` makes one rule allow everything, so a
# run of the suite shows whether any test notices. Off unless asked for.


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--mutate-rule", default=None, metavar="RULE_ID", help="replace this policy rule with allow-all (mutation testing)")


def pytest_configure(config: pytest.Config) -> None:
    rule_id = config.getoption("--mutate-rule", default=None)
    if rule_id:
        from tests.reliability.mutants import allow_all  # noqa: PLC0415

        allow_all(rule_id)
