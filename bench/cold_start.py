"""Cold start: seconds from spawning `mlgate serve` (stdio) to its answer to tools/list, against a
bare MCPServer stdio process with one tool, spawned the same way in the same run, alternating.
Prints the medians and their ratio (target <= 2.0).

    python -m bench.cold_start            (MLGATE_BENCH_STARTS=N, default 7)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server.workspace import init_workspace

STARTS = int(os.environ.get("MLGATE_BENCH_STARTS", "7"))
TARGET = 2.0
REPO_ROOT = Path(__file__).resolve().parents[1]
BARE = """
from mcp.server import MCPServer
server = MCPServer("bare")

@server.tool()
def echo(text: str) -> str:
    return text

server.run("stdio")
"""
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


def time_to_tools_list(argv: list[str]) -> float:
    """Seconds from spawn to the tools/list answer (the process is then closed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        process.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in (INITIALIZE, INITIALIZED, LIST)))
        process.stdin.flush()
        while json.loads(process.stdout.readline()).get("id") != 2:
            pass
        return time.perf_counter() - started
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as scratch:
        workspace = init_workspace(Path(scratch) / "ws")
        mlgate = [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace)]
        bare = [sys.executable, "-c", BARE]
        governed, baseline = [], []
        for _ in range(STARTS):
            baseline.append(time_to_tools_list(bare))
            governed.append(time_to_tools_list(mlgate))
    g, b = statistics.median(governed), statistics.median(baseline)
    print(f"tools/list after spawn, median of {STARTS}: mlgate serve {g:.2f} s, bare MCPServer {b:.2f} s, ratio {g / b:.2f} (target <= {TARGET})")


if __name__ == "__main__":
    main()
