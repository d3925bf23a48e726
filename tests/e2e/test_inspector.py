"""The MCP Inspector CLI (a real third-party client) drives mlgate over stdio and over HTTP.

The Inspector is pinned in tests/e2e/package.json and installed by `make test` (`npm ci` here).
Without it these tests fail, unless MLGATE_SKIP_NODE=1 says Node clients are deliberately absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import RESERVED_TOOL_NAMES, build_server
from server.audit import read_tail
from server.auth import TokenStore
from server.settings import Settings
from tests.credentials import issue
from tests.e2e.transports import mlgate_http

E2E_DIR = Path(__file__).resolve().parent
INSPECTOR = E2E_DIR / "node_modules" / ".bin" / "mcp-inspector"
MLGATE = Path(sys.executable).parent / "mlgate"
RUN_TIMEOUT_S = 120
TOOL_ERROR_EXIT = 5  # the Inspector CLI's exit status for a tool result with isError: true
DENIED_CALL = [
    "--tool-name",
    "propose_config_change",
    "--tool-arg",
    'changes={"split.test_size": 0.5}',
    "dry_run=true",
    'reasoning={"hypothesis_category": "baseline", "change_description": "Use a larger held-out test set.", "expected_effect": "Tighter confidence intervals on roc_auc."}',
]


@pytest.fixture(scope="module", autouse=True)
def inspector_installed() -> None:
    if INSPECTOR.exists():
        return
    if os.environ.get("MLGATE_SKIP_NODE") == "1":
        pytest.skip("MLGATE_SKIP_NODE=1: Node clients are not installed")
    pytest.fail(f"the MCP Inspector is not installed at {INSPECTOR}: run `make test`, or `npm ci` in tests/e2e")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def inspector(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs the Inspector CLI with a private HOME (it keeps a catalog there); bounded by RUN_TIMEOUT_S."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run([str(INSPECTOR), "--cli", *args], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def stdio_target(workspace: Path) -> list[str]:
    return ["--", str(MLGATE), "serve", "--workspace", str(workspace)]


def http_target(url: str, token: str) -> list[str]:
    return ["--transport", "http", "--server-url", f"{url}/mcp", "--header", f"Authorization: Bearer {token}"]


@pytest.fixture
def http_url(settings: Settings) -> Iterator[tuple[str, str]]:
    token = TokenStore(settings.state_dir).create("inspector", "agent")
    with mlgate_http(settings) as url:
        yield url, token


def registered_tools(settings: Settings) -> list[str]:
    async def names() -> list[str]:
        async with Client(build_server(settings)) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    return anyio.run(names)


def listed_tools(run: subprocess.CompletedProcess[str]) -> list[str]:
    assert run.returncode == 0, run.stderr
    return [tool["name"] for tool in json.loads(run.stdout)["tools"]]


def assert_denied(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == TOOL_ERROR_EXIT, (run.returncode, run.stderr)
    result = json.loads(run.stdout)
    assert result["isError"] is True
    denial = result["structuredContent"]
    assert denial["decision"] == "deny" and denial["rule_id"] == "config.protected_fields"
    return denial


def test_inspector_lists_the_governed_tools_over_stdio(workspace: Path, settings: Settings, home: Path) -> None:
    listed = listed_tools(inspector(home, "--method", "tools/list", *stdio_target(workspace)))
    assert listed == registered_tools(settings)
    assert {n for n in RESERVED_TOOL_NAMES if n in listed} >= {"propose_config_change"}


def test_inspector_sees_a_denial_over_stdio_as_a_tool_error(workspace: Path, home: Path) -> None:
    assert_denied(inspector(home, "--method", "tools/call", *DENIED_CALL, *stdio_target(workspace)))


def test_inspector_lists_the_governed_tools_over_http_with_a_bearer_token(settings: Settings, http_url: tuple[str, str], home: Path) -> None:
    url, token = http_url
    listed = listed_tools(inspector(home, "--method", "tools/list", *http_target(url, token)))
    assert listed == registered_tools(settings)


def test_inspector_sees_the_same_denial_over_http_as_over_stdio(workspace: Path, http_url: tuple[str, str], home: Path) -> None:
    url, token = http_url
    over_http = assert_denied(inspector(home, "--method", "tools/call", *DENIED_CALL, *http_target(url, token)))
    over_stdio = assert_denied(inspector(home, "--method", "tools/call", *DENIED_CALL, *stdio_target(workspace)))
    assert over_http == over_stdio


def test_inspector_without_the_token_is_refused_over_http(http_url: tuple[str, str], home: Path) -> None:
    url, _ = http_url
    run = inspector(home, "--method", "tools/list", *http_target(url, "not-a-token"))
    assert run.returncode != 0 and '"tools"' not in run.stdout


def test_inspector_acts_over_stdio_for_the_human_whose_token_it_passes_to_the_server(workspace: Path, settings: Settings, home: Path) -> None:
    """The Inspector starts its stdio server with only the variables given by -e (not its own
    environment): the human passes the role and her token there."""
    token = issue(settings.state_dir, "risk-officer")
    passed = ["-e", "MLGATE_ROLE=human", "-e", f"MLGATE_TOKEN={token}"]
    run = inspector(home, *passed, "--method", "tools/call", "--tool-name", "list_runs", *stdio_target(workspace))
    assert run.returncode == 0, run.stderr
    record = read_tail(settings.audit_path, 1)[0]
    assert (record["principal"], record["role"], record["tool"]) == ("risk-officer", "human", "list_runs")
    assert record["credential"].startswith("risk-officer:") and token not in json.dumps(record) and token not in run.stdout


def test_inspector_over_stdio_as_a_human_without_her_token_gets_no_server(workspace: Path, settings: Settings, home: Path) -> None:
    run = inspector(home, "-e", "MLGATE_ROLE=human", "--method", "tools/call", "--tool-name", "list_runs", *stdio_target(workspace))
    assert run.returncode != 0 and '"content"' not in run.stdout
    assert not any(r.get("tool") == "list_runs" for r in read_tail(settings.audit_path, 5))
