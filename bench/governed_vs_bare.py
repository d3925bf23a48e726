"""The price of governance: a governed read-only tool call vs a bare MCPServer echo tool.

Both servers run on the same transport (in-memory, stdio subprocesses, HTTP subprocesses with the
same bearer-token middleware and Host/Origin guard), and calls alternate between them so that
machine noise hits both alike. Prints p50 and p99 per transport and the governed/bare ratios
(target <= 1.3). The governed call is `load_dataset` on a tiny dataset when that tool is served,
otherwise the cheapest governed call available (a dry-run config proposal: decided and audited,
nothing changed).

    python -m bench.governed_vs_bare            (MLGATE_BENCH_CALLS=N per transport, default 300)
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from server.app import build_server
from server.auth import TokenStore
from server.commands.data import import_files
from server.http import BindAddress, auth_options, combined_app, free_loopback_bind, transport_security, uvicorn_config
from server.settings import HttpSettings, load_settings
from server.workspace import init_workspace

REPO_ROOT = Path(__file__).resolve().parent.parent
CALLS = int(os.environ.get("MLGATE_BENCH_CALLS", "300"))
WARMUP = 20
TARGET_RATIO = 1.3
START_TIMEOUT_S = 60.0
TINY_CSV = "id,income,age,default\n" + "".join(f"{i},{1000 + 37 * i % 900},{20 + i % 50},{i % 2}\n" for i in range(40))
ALLOWED_DRY_RUN = {
    "changes": {"model.params.max_depth": 5},
    "reasoning": {
        "hypothesis_category": "hyperparameter_tuning",
        "change_description": "Try a slightly deeper tree ensemble.",
        "expected_effect": "A small roc_auc gain without overfitting.",
    },
    "dry_run": True,
}

Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index] * 1000


def timing(samples: list[float]) -> Timing:
    return Timing(percentile(samples, 50), percentile(samples, 99))


def bare_server(**options: Any) -> MCPServer:
    server = MCPServer("bare", **options)

    @server.tool()
    def echo(text: str) -> str:
        """Returns its input."""
        return text

    return server


def serve_bare_stdio() -> None:
    bare_server().run("stdio")


def serve_bare_http(port: int, state_dir: str) -> None:
    """The bare server behind the same auth and Host/Origin guard mlgate's HTTP app uses."""
    import uvicorn

    bind = BindAddress("127.0.0.1", port)
    server = bare_server(**auth_options(TokenStore(Path(state_dir)), bind.url))
    app = combined_app(server, bind, transport_security(bind, HttpSettings()))
    uvicorn.Server(uvicorn_config(app, bind)).run()


def governed_call(workspace: Path, tool_names: set[str]) -> Call:
    """load_dataset on a tiny imported dataset if served, else an allowed dry-run proposal."""
    if "load_dataset" in tool_names:
        csv = workspace.parent / "tiny.csv"
        csv.write_text(TINY_CSV)
        content_hash = import_files(workspace, [csv]).added.content_hash
        return "load_dataset", {"content_hash": content_hash}
    return "propose_config_change", ALLOWED_DRY_RUN


async def alternate(governed: Client, bare: Client, call: Call, n: int) -> tuple[Timing, Timing]:
    """n calls to each, alternating, after WARMUP untimed ones. Raises if a governed call fails."""
    tool, arguments = call
    samples: dict[str, list[float]] = {"governed": [], "bare": []}
    for i in range(WARMUP + n):
        for name, invoke in (("governed", lambda: governed.call_tool(tool, arguments)), ("bare", lambda: bare.call_tool("echo", {"text": "x" * 64}))):
            start = time.perf_counter()
            result = await invoke()
            elapsed = time.perf_counter() - start
            if result.is_error:
                raise RuntimeError(f"{name} call failed: {result.content}")
            if i >= WARMUP:
                samples[name].append(elapsed)
    return timing(samples["governed"]), timing(samples["bare"])


@asynccontextmanager
async def stdio_pair(workspace: Path) -> AsyncIterator[tuple[Client, Client]]:
    governed = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "serve", "--workspace", str(workspace)], cwd=REPO_ROOT)
    bare = StdioServerParameters(command=sys.executable, args=["-c", "from bench.governed_vs_bare import serve_bare_stdio; serve_bare_stdio()"], cwd=REPO_ROOT)
    async with Client(governed) as g, Client(bare) as b:
        yield g, b


def _start(argv: list[str], port: int) -> subprocess.Popen:
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/mcp", timeout=1.0)
            return process
        except httpx2.TransportError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.05)
            if process.returncode is not None:
                raise RuntimeError(f"server exited early: {process.stderr.read().decode()[-2000:]}")
    process.kill()
    raise TimeoutError(f"no HTTP server on port {port} within {START_TIMEOUT_S}s")


def _free_port() -> int:
    bind, sock = free_loopback_bind()
    sock.close()
    return bind.port


@asynccontextmanager
async def http_pair(workspace: Path, state_dir: Path, token: str) -> AsyncIterator[tuple[Client, Client]]:
    governed_port, bare_port = _free_port(), _free_port()
    governed_argv = [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace), "--http", f"127.0.0.1:{governed_port}"]
    bare_code = "import sys; from bench.governed_vs_bare import serve_bare_http; serve_bare_http(int(sys.argv[1]), sys.argv[2])"
    bare_argv = [sys.executable, "-c", bare_code, str(bare_port), str(state_dir)]
    processes = [_start(governed_argv, governed_port), _start(bare_argv, bare_port)]
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=30.0) as gh, httpx2.AsyncClient(headers=headers, timeout=30.0) as bh:
            g = Client(streamable_http_client(f"http://127.0.0.1:{governed_port}/mcp", http_client=gh))
            b = Client(streamable_http_client(f"http://127.0.0.1:{bare_port}/mcp", http_client=bh))
            async with g, b:
                yield g, b
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


async def run_all(root: Path, n: int) -> tuple[str, dict[str, tuple[Timing, Timing]]]:
    """The governed tool's name and (governed, bare) timings per transport."""
    workspace = init_workspace(root / "ws")
    settings = load_settings(workspace, transport="memory")
    token = TokenStore(settings.state_dir).create("bench", "agent")
    results: dict[str, tuple[Timing, Timing]] = {}
    async with Client(build_server(settings)) as governed, Client(bare_server()) as bare:
        call = governed_call(workspace, {t.name for t in (await governed.list_tools()).tools})
        results["in-memory"] = await alternate(governed, bare, call, n)
    pairs: dict[str, Callable[[], Any]] = {"stdio": lambda: stdio_pair(workspace), "http": lambda: http_pair(workspace, settings.state_dir, token)}
    for transport, pair in pairs.items():
        async with pair() as (governed, bare):
            results[transport] = await alternate(governed, bare, call, n)
    return call[0], results


def report(tool: str, results: dict[str, tuple[Timing, Timing]], n: int) -> str:
    lines = [f"governed {tool} vs bare echo, {n} calls each per transport (ms; ratio = governed / bare, target <= {TARGET_RATIO})"]
    lines.append(f"{'transport':<10} {'gov p50':>8} {'bare p50':>9} {'ratio':>6} {'gov p99':>8} {'bare p99':>9} {'ratio':>6}")
    for transport, (gov, bare) in results.items():
        r50, r99 = gov.p50_ms / bare.p50_ms, gov.p99_ms / bare.p99_ms
        lines.append(f"{transport:<10} {gov.p50_ms:8.2f} {bare.p50_ms:9.2f} {r50:6.2f} {gov.p99_ms:8.2f} {bare.p99_ms:9.2f} {r99:6.2f}")
    return "\n".join(lines)


def main() -> None:
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per request otherwise
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        tool, results = anyio.run(run_all, Path(tmp), CALLS)
    print(report(tool, results, CALLS))


if __name__ == "__main__":
    main()
