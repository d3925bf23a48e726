"""What the enforcement point itself costs: governed load_dataset vs a bare MCPServer tool doing
the same work (the same CAS verification, parsing, quality checks and masked sample, in a worker
thread) with no validation, policies or audit records. In-memory transport, calls alternating;
prints p50/p99 and their ratios (target <= 1.3). bench.governed_vs_bare compares against an echo.

    python -m bench.governance_overhead            (MLGATE_BENCH_CALLS=N, default 300)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer

from bench.governed_vs_bare import TINY_CSV
from policies import Principal
from server.app import build_server
from server.commands.data import import_files
from server.ports import build_ports
from server.settings import load_settings
from server.workspace import init_workspace
from tools.load_dataset import collect, execute

CALLS = int(os.environ.get("MLGATE_BENCH_CALLS", "300"))
TARGET = 1.3


def bare_server(ports: Any) -> MCPServer:
    server = MCPServer("bare")
    config = ports.standards.policy_config()

    @server.tool()
    async def load(content_hash: str) -> dict[str, Any]:
        facts = await anyio.to_thread.run_sync(collect, ports.cas, content_hash, config, Principal("bench", "agent"))
        return {k: v for k, v in facts.items() if k in ("manifest", "quality", "sample", "masked_columns")}

    return server


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(workspace: Path, content_hash: str) -> dict[str, list[float]]:
    settings = load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    times: dict[str, list[float]] = {"governed": [], "bare": []}
    async with Client(build_server(settings, ports)) as governed, Client(bare_server(ports)) as bare:
        calls = {"governed": lambda: governed.call_tool("load_dataset", {"content_hash": content_hash}), "bare": lambda: bare.call_tool("load", {"content_hash": content_hash})}
        for i in range(CALLS + 20):
            for name, call in calls.items():
                started = time.perf_counter()
                result = await call()
                assert not result.is_error
                if i >= 20:
                    times[name].append((time.perf_counter() - started) * 1000)
    return times


def tiny_workspace(root: Path) -> tuple[Path, str]:
    """A workspace under `root` holding the tiny dataset; (workspace, its content hash)."""
    workspace = init_workspace(root / "ws")
    (root / "tiny.csv").write_text(TINY_CSV)
    return workspace, import_files(workspace, [root / "tiny.csv"]).added.content_hash


def print_ratios(times: dict[str, list[float]], subject: str, baseline: str, target: float) -> None:
    """p50 and p99 of `subject` against `baseline` (ms) and their ratios."""
    s50, b50 = statistics.median(times[subject]), statistics.median(times[baseline])
    s99, b99 = percentile(times[subject], 0.99), percentile(times[baseline], 0.99)
    print(f"p50 {s50:.2f} vs {b50:.2f} ratio {s50 / b50:.2f}; p99 {s99:.2f} vs {b99:.2f} ratio {s99 / b99:.2f} (target <= {target})")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = anyio.run(measure, *tiny_workspace(Path(tmp)))
    print(f"governed load_dataset vs the same work bare, in-memory, {CALLS} calls each (ms)")
    print_ratios(times, "governed", "bare", TARGET)


if __name__ == "__main__":
    main()
