"""Reliability figures: fuzzing (in memory and over HTTP), concurrent load, the kill -9 crash loop
and the storage faults, each on a fresh workspace, with the functions the tests use
(tests/reliability/). Prints one table and exits 1 when any figure but "inputs tried" is not 0.

    python -m bench.reliability

Sizes (full size by default; hours on a small machine):
    MLGATE_REL_FUZZ_PER_TOOL=10000  MLGATE_REL_FUZZ_HTTP_PER_TOOL=1000
    MLGATE_REL_LOAD_CLIENTS=8  MLGATE_REL_LOAD_CALLS=500  MLGATE_REL_LOAD_RUNS=4
    MLGATE_REL_KILLS=200  MLGATE_REL_FAULTS=1 (0 skips the storage faults)

Columns: inputs tried (calls, kills or faults); crashes (a call answered without rule_id/reason,
with a traceback or server path, a client or worker that broke, a fault answered unclearly); 5xx
(HTTP answers >= 500); lost records (calls or acknowledged units the audit chain does not hold,
MLflow runs that do not match successful run_experiment calls); escapes (files that appeared
outside the workspace and state dir: beside the workspace, untracked in this repository but for
.py/.md files, or /tmp/pwn, the fuzzer's favourite target); detected tampering (a chain that does not verify, a
partial or unvouched dataset)."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
from mcp import Client

from server.app import build_server, tool_specs
from server.audit import AuditChain, verify
from server.auth import TokenStore
from server.commands.data import store_for
from server.ports import build_ports
from server.registration import input_schema
from server.settings import Settings, load_settings
from server.workspace import init_workspace
from tests.e2e.transports import bearer, mlgate_http
from tests.reliability import faults, load
from tests.reliability.checks import problems
from tests.reliability.inputs import fuzzed_arguments
from tests.reliability.test_crash_loop import chained_units, kill_after
from tests.reliability.test_fuzz import _call, _open_session, index_seed, private_paths

ROOT = Path(__file__).resolve().parents[1]
PWN = Path("/tmp/pwn")


def size(name: str, default: int) -> int:
    return int(os.environ.get(f"MLGATE_REL_{name}", str(default)))


@dataclass
class Row:
    suite: str
    inputs: int = 0
    crashes: int = 0
    http_5xx: int = 0
    lost: int = 0
    escapes: int = 0
    tampering: int = 0
    note: str = ""

    def off(self) -> bool:
        return any((self.crashes, self.http_5xx, self.lost, self.escapes, self.tampering))


# --- escapes: what appeared outside the workspace and its state dir -------------------------------


def untracked() -> set[str]:
    """Untracked files of this checkout, less source and docs (others may be writing those)."""
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True, text=True, check=False)
    return {line[3:] for line in done.stdout.splitlines() if line.startswith("??") and not line.endswith((".py", ".md"))}


def outside(scratch: Path) -> set[str]:
    beside = {f"scratch:{p.name}" for p in scratch.iterdir() if p.name not in ("ws", "inputs")}
    return beside | {f"repo:{p}" for p in untracked()} | ({str(PWN)} if PWN.exists() else set())


def with_fresh_workspace(suite: Callable[[Path, Settings, Path], Row]) -> Row:
    """Run `suite` on a fresh workspace in a scratch dir and count the files that escaped it."""
    with tempfile.TemporaryDirectory(prefix="mlgate-rel-") as name:
        scratch = Path(name)
        (scratch / "inputs").mkdir()
        workspace = init_workspace(scratch / "ws")
        before = outside(scratch)
        row = suite(workspace, load_settings(workspace, transport="memory"), scratch / "inputs")
        row.escapes += len(outside(scratch) - before)
        return row


def chain_broken(settings: Settings) -> int:
    return 0 if verify(settings.audit_path).ok else 1


# --- fuzzing -------------------------------------------------------------------------------------


def fuzz_memory(workspace: Path, settings: Settings, _: Path) -> Row:
    row, per_tool = Row("fuzz, in memory"), size("FUZZ_PER_TOOL", 10_000)
    ports = build_ports(settings)
    before = len(settings.audit_path.read_bytes().splitlines())

    async def go() -> None:
        async with Client(build_server(settings, ports)) as client:
            for spec in tool_specs():
                for arguments in fuzzed_arguments(input_schema(spec), per_tool, seed=index_seed(spec.name)):
                    row.crashes += bool(problems(await client.call_tool(spec.name, arguments), private_paths(settings)))
                    row.inputs += 1
            row.crashes += not (await client.list_tools()).tools

    asyncio.run(go())
    ports.audit.close()
    row.lost = max(0, row.inputs - (len(settings.audit_path.read_bytes().splitlines()) - before))
    row.tampering = chain_broken(settings)
    return row


def fuzz_http(workspace: Path, settings: Settings, _: Path) -> Row:
    row, per_tool = Row("fuzz, streamable HTTP"), size("FUZZ_HTTP_PER_TOOL", 1_000)
    token = TokenStore(settings.state_dir).create("fuzz-agent", "agent")

    async def go(url: str) -> None:
        headers = {**bearer(token), "Accept": "application/json, text/event-stream"}
        async with httpx2.AsyncClient(headers=headers, timeout=120.0) as http:
            session = await _open_session(http, url)
            for spec in tool_specs():
                for index, arguments in enumerate(fuzzed_arguments(input_schema(spec), per_tool, seed=index_seed(spec.name))):
                    reply = await http.post(f"{url}/mcp", json=_call(index, spec.name, arguments), headers=session)
                    row.inputs += 1
                    row.http_5xx += reply.status_code >= 500
                    row.crashes += "Traceback" in reply.text or str(settings.workspace) in reply.text
            final = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": "last", "method": "tools/list"}, headers=session)
            row.crashes += final.status_code != 200

    with mlgate_http(settings) as url:
        asyncio.run(go(url))
    row.tampering = chain_broken(settings)
    return row


# --- load ----------------------------------------------------------------------------------------


def load_suite(workspace: Path, settings: Settings, inputs: Path) -> Row:
    clients, calls, runs = size("LOAD_CLIENTS", 8), size("LOAD_CALLS", 500), size("LOAD_RUNS", 4)
    dataset = load.prepare(workspace, inputs)
    answered = asyncio.run(load.run_load(workspace, settings, clients, calls, runs, dataset))
    found = load.load_problems(answered, settings, clients * calls + min(runs, clients))
    row = Row(f"load, {clients} clients x {calls} calls", inputs=len(answered))
    row.crashes = sum(bool(c.problems) for c in answered)
    row.lost = sum(1 for p in found if " audited" in p or "never answered" in p or "MLflow holds" in p)
    row.tampering = chain_broken(settings)
    table = load.latency_table(answered)
    row.note = "; ".join(f"{tool} p50 {t['p50_s']}s p99 {t['p99_s']}s" for tool, t in table.items())
    return row


# --- crash loop ----------------------------------------------------------------------------------


def crash_audit(workspace: Path, settings: Settings, _: Path) -> Row:
    rng, acked, row = random.Random(1), [], Row("kill -9, audit appends")
    for round_ in range(size("KILLS", 200)):
        acked += kill_after_or_count(row, workspace, "audit", f"r{round_}", rng.randint(1, 60))
        row.tampering += reopen_broken(workspace)
    row.lost = len(set(acked) - chained_units(workspace))
    return row


def crash_import(workspace: Path, settings: Settings, _: Path) -> Row:
    rng, acked, row = random.Random(2), [], Row("kill -9, dataset imports")
    for round_ in range(size("KILLS", 200)):
        acked += kill_after_or_count(row, workspace, "import", f"i{round_}", rng.randint(1, 3))
        row.tampering += reopen_broken(workspace)
    store = store_for(workspace)
    visible = store.list_hashes()
    row.lost = len(set(acked) - set(visible))
    row.tampering += sum(bool(store.verify(h, registered=False).facts()["problems"]) for h in visible)
    row.tampering += len(store.registry.unvouched())
    return row


def kill_after_or_count(row: Row, workspace: Path, mode: str, tag: str, acks: int) -> list[str]:
    row.inputs += 1
    try:
        return kill_after(workspace, mode, tag, acks)
    except AssertionError:  # the worker died on its own
        row.crashes += 1
        return []


def reopen_broken(workspace: Path) -> int:
    path = load_settings(workspace).audit_path
    try:
        AuditChain(path).close()
    except Exception:  # noqa: BLE001 - a chain that does not reopen is a finding
        return 1
    return 0 if verify(path).ok else 1


# --- storage faults ------------------------------------------------------------------------------


def fault_suite(workspace: Path, settings: Settings, inputs: Path) -> Row:
    row = Row("storage faults (disk full, read-only, locked)")
    refused = faults.namespaces_refused()
    for mode, judge in (("disk_full", faults.disk_full_problems), ("read_only", faults.read_only_problems)):
        if refused:
            row.note = f"mount faults skipped: {refused}"
            continue
        row.inputs += 1
        found = judge(faults.meet_fault(mode, workspace, []))
        row.crashes += sum(1 for p in found if "chain" not in p and "partial" not in p)
        row.tampering += sum(1 for p in found if "chain" in p)
        row.lost += sum(1 for p in found if "partial" in p)
    row.inputs += 1
    row.crashes += locked_problems(settings)
    return row


def locked_problems(settings: Settings) -> int:
    ports = build_ports(settings)

    async def go() -> int:
        async with Client(build_server(settings, ports)) as client:
            await client.call_tool("list_runs", {})
            with faults.locked_tracking_db(settings.state_dir / "mlflow.db"):
                locked = await client.call_tool("list_runs", {})
            payload = locked.structured_content or {}
            return int(not locked.is_error or payload.get("rule_id") != "tracking.busy" or bool(problems(locked, private_paths(settings))))

    try:
        return asyncio.run(go())
    finally:
        ports.audit.close()


SUITES = (fuzz_memory, fuzz_http, load_suite, crash_audit, crash_import, fault_suite)
HEADER = ("suite", "inputs tried", "crashes", "5xx", "lost records", "escapes", "detected tampering")


def print_table(rows: list[Row]) -> None:
    cells = [HEADER] + [(r.suite, r.inputs, r.crashes, r.http_5xx, r.lost, r.escapes, r.tampering) for r in rows]
    total = ("total", *(sum(r[i] for r in cells[1:]) for i in range(1, 7)))
    widths = [max(len(str(row[i])) for row in [*cells, total]) for i in range(7)]
    for row in [*cells, total]:
        print(" | ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))))
    for r in rows:
        if r.note:
            print(f"{r.suite}: {r.note}")


def main() -> None:
    """Run every suite (MLGATE_REL_FAULTS=0 leaves out the storage faults); exit 1 if a figure is off."""
    suites = [s for s in SUITES if s is not fault_suite or size("FAULTS", 1)]
    rows = []
    for suite in suites:
        print(f"-- {suite.__name__}", flush=True)
        rows.append(with_fresh_workspace(suite))
    print_table(rows)
    if any(r.off() for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
