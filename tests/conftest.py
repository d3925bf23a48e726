"""Shared fixtures: real workspaces (copier template + git) in tmp dirs."""

from __future__ import annotations

from pathlib import Path

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
