"""Connecting to mlgate over each transport it serves, with real servers and real clients."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from server.http import BindAddress, build_http_app, free_loopback_bind, serving_in_background
from server.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def mlgate_http(settings: Settings) -> Iterator[str]:
    """mlgate's HTTP app on a free loopback port; yields its base URL."""
    bind, sock = free_loopback_bind()
    with serving_in_background(build_http_app(settings, bind), bind, sock) as url:
        yield url


def streamable_http(url: str, token: str) -> Client:
    http = httpx2.AsyncClient(headers=bearer(token), timeout=httpx2.Timeout(30.0))
    return Client(streamable_http_client(f"{url}/mcp", http_client=http))


def sse(url: str, token: str) -> Client:
    return Client(sse_client(f"{url}/sse", headers=bearer(token)))


def stdio(workspace: Path, **env: str) -> Client:
    """`mlgate serve` as a real subprocess of this interpreter, speaking over its stdin/stdout."""
    args = ["-m", "server.cli", "serve", "--workspace", str(workspace)]
    return Client(StdioServerParameters(command=sys.executable, args=args, env=env, cwd=REPO_ROOT))


__all__ = ["BindAddress", "DENIED_CALLS", "bearer", "denied_calls", "mlgate_http", "sse", "stdio", "streamable_http"]


# Denials every transport must give identically, by tool: each is refused before any side effect.
DENIED_CALLS: dict[str, dict[str, object]] = {
    "load_dataset": {"content_hash": "../../etc/passwd"},
    "propose_config_change": {"changes": {"model.type": "xgboost"}, "confirm": True},
}


def denied_calls(tool_names: set[str]) -> list[tuple[str, dict[str, object]]]:
    """The denied calls of DENIED_CALLS whose tools the server offers."""
    return [(tool, args) for tool, args in DENIED_CALLS.items() if tool in tool_names]


def wait_for_answer(url: str, process: subprocess.Popen, start_s: float) -> None:
    """Until `mlgate serve --http` at `url` answers (any status), within `start_s`; fails at once
    when its process exits first."""
    deadline = time.monotonic() + start_s
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"{url}/mcp", timeout=1.0)
            return
        except httpx2.TransportError:
            try:
                process.wait(timeout=0.1)  # the pause between polls, and a check that it still runs
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"mlgate serve exited early ({process.returncode})") from None
    raise TimeoutError(f"mlgate serve at {url} did not answer within {start_s:.0f} s")
