"""What keeping SSE events for resumption costs (server/http_events.py): the same governed
load_dataset call over streamable HTTP (a 2025-11-25 session of the Python SDK client) to two
mlgate apps in this process on loopback, one keeping events (the default), one with
`replay_bytes_per_session: 0`; calls alternating. Prints p50/p99 and their ratios (target <= 1.05).

    python -m bench.http_replay            (MLGATE_BENCH_CALLS=N, default 200)
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.governance_overhead import print_ratios, tiny_workspace
from server.auth import TokenStore
from server.http import build_http_app, free_loopback_bind, serving_in_background
from server.settings import HttpSettings, Settings, load_settings

CALLS = int(os.environ.get("MLGATE_BENCH_CALLS", "200"))
WARMUP = 20
TARGET = 1.05


def serve(stack: ExitStack, settings: Settings) -> str:
    bind, sock = free_loopback_bind()
    return stack.enter_context(serving_in_background(build_http_app(settings, bind), bind, sock))


async def measure(urls: dict[str, str], token: str, content_hash: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in urls}
    async with AsyncExitStack() as stack:
        clients = {}
        for name, url in urls.items():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
            clients[name] = await stack.enter_async_context(Client(streamable_http_client(f"{url}/mcp", http_client=http), mode="legacy"))
        for i in range(CALLS + WARMUP):
            for name, client in clients.items():
                started = time.perf_counter()
                result = await client.call_tool("load_dataset", {"content_hash": content_hash})
                assert not result.is_error, result.structured_content
                if i >= WARMUP:
                    times[name].append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workspace, content_hash = tiny_workspace(Path(tmp))
        settings = load_settings(workspace, transport="memory")
        token = TokenStore(settings.state_dir).create("bench", "agent")
        plain = settings.model_copy(update={"http": HttpSettings(replay_bytes_per_session=0)})
        urls = {"replay": serve(stack, settings), "no replay": serve(stack, plain)}
        times = anyio.run(measure, urls, token, content_hash)
    print(f"load_dataset over streamable HTTP with events kept for resumption vs without, {CALLS} calls each (ms)")
    print_ratios(times, "replay", "no replay", TARGET)

if __name__ == "__main__":
    main()
