"""Reliability figures: fuzzing (in memory and over HTTP), concurrent load, the kill -9 crash loop
and the storage faults, each on a fresh workspace, with the functions the tests use
(tests/reliability/). Prints one table and exits 1 when any figure but "inputs tried" is not 0.

    python -m bench.reliability [--size small|medium|full] [--suites a,b] [--jobs N]

Sizes (`SIZES`; full by default; each figure can be overridden by its MLGATE_REL_* variable):
    full    10 000 fuzzed inputs per tool in memory and over HTTP, 8 clients x 500 mixed calls
            with 4 real runs, kill -9 per mode as in KILLS_* (204 in all: the
            governed modes start a server per kill, so most kills are audit appends and imports)
    medium  1 000 / 100 inputs per tool, 8 x 60 calls, fewer kills
    small   the CI size: a few per tool, a few kills per mode
--suites picks suites by function name (default: all); --jobs runs that many suites at once, each
in its own process on its own workspace (the HTTP fuzz also runs FUZZ_HTTP_SESSIONS sessions at
once: the server handles them concurrently).

Columns: inputs tried (calls, kills or faults); crashes (a call answered without rule_id/reason,
with a traceback or server path, a client or worker that broke, a fault answered unclearly); 5xx
(HTTP answers >= 500); lost records (calls or acknowledged units the audit chain does not hold,
MLflow runs that do not match successful run_experiment calls); escapes (files that appeared
outside the workspace and state dir: beside the workspace, untracked in this repository but for
.py/.md files, or /tmp/pwn, the fuzzer's favourite target); detected tampering (a chain that does not verify, a
partial or unvouched dataset)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
from tests.reliability import crash_lab, faults, load
from tests.reliability.checks import problems
from tests.reliability.inputs import fuzzed_arguments
from tests.reliability.test_crash_loop import chained_units, kill_after
from tests.reliability.test_fuzz import _call, _open_session, index_seed, private_paths

ROOT = Path(__file__).resolve().parents[1]
PWN = Path("/tmp/pwn")


SIZES: dict[str, dict[str, int]] = {
    "full": {"FUZZ_PER_TOOL": 10_000, "FUZZ_HTTP_PER_TOOL": 10_000, "FUZZ_HTTP_SESSIONS": 4, "LOAD_CLIENTS": 8, "LOAD_CALLS": 500, "LOAD_RUNS": 4,
             "KILLS_AUDIT": 120, "KILLS_IMPORT": 50, "KILLS_RUN": 10, "KILLS_PROMOTION": 12, "KILLS_APPROVAL": 12},
    "medium": {"FUZZ_PER_TOOL": 1_000, "FUZZ_HTTP_PER_TOOL": 100, "FUZZ_HTTP_SESSIONS": 4, "LOAD_CLIENTS": 8, "LOAD_CALLS": 60, "LOAD_RUNS": 2,
               "KILLS_AUDIT": 40, "KILLS_IMPORT": 20, "KILLS_RUN": 3, "KILLS_PROMOTION": 5, "KILLS_APPROVAL": 5},
    "small": {"FUZZ_PER_TOOL": 20, "FUZZ_HTTP_PER_TOOL": 5, "FUZZ_HTTP_SESSIONS": 2, "LOAD_CLIENTS": 2, "LOAD_CALLS": 10, "LOAD_RUNS": 1,
              "KILLS_AUDIT": 4, "KILLS_IMPORT": 2, "KILLS_RUN": 1, "KILLS_PROMOTION": 2, "KILLS_APPROVAL": 2},
}
CHOSEN = {"size": "full"}


def size(name: str) -> int:
    """A figure of the chosen size; MLGATE_REL_<NAME> overrides it."""
    return int(os.environ.get(f"MLGATE_REL_{name}", str(SIZES[CHOSEN["size"]][name])))


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
    seconds: int = 0

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
        escaped = sorted(outside(scratch) - before)
        row.escapes += len(escaped)
        row.note += f" escaped: {escaped[:10]}" if escaped else ""
        return row


def fuzzed_tools() -> list:
    """Every governed tool, or those named in MLGATE_REL_FUZZ_TOOLS (comma-separated)."""
    named = [n for n in os.environ.get("MLGATE_REL_FUZZ_TOOLS", "").split(",") if n]
    return [s for s in tool_specs() if not named or s.name in named]


def chain_broken(settings: Settings) -> int:
    return 0 if verify(settings.audit_path).ok else 1


# --- fuzzing -------------------------------------------------------------------------------------


def fuzz_memory(workspace: Path, settings: Settings, _: Path) -> Row:
    row, per_tool = Row("fuzz, in memory"), size("FUZZ_PER_TOOL")
    ports = build_ports(settings)
    before = len(settings.audit_path.read_bytes().splitlines())

    async def go() -> None:
        async with Client(build_server(settings, ports)) as client:
            for spec in fuzzed_tools():
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
    """FUZZ_HTTP_SESSIONS sessions at once, each taking the next tool's inputs from a shared queue."""
    row, per_tool = Row("fuzz, streamable HTTP"), size("FUZZ_HTTP_PER_TOOL")
    token = TokenStore(settings.state_dir).create("fuzz-agent", "agent")
    headers = {**bearer(token), "Accept": "application/json, text/event-stream"}

    async def session_loop(url: str, http: httpx2.AsyncClient, queue: list) -> None:
        session = await _open_session(http, url)
        while queue:
            spec = queue.pop()
            for index, arguments in enumerate(fuzzed_arguments(input_schema(spec), per_tool, seed=index_seed(spec.name))):
                reply = await http.post(f"{url}/mcp", json=_call(index, spec.name, arguments), headers=session)
                row.inputs += 1
                row.http_5xx += reply.status_code >= 500
                row.crashes += "Traceback" in reply.text or str(settings.workspace) in reply.text
        final = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": "last", "method": "tools/list"}, headers=session)
        row.crashes += final.status_code != 200

    async def go(url: str) -> None:
        queue = fuzzed_tools()
        async with httpx2.AsyncClient(headers=headers, timeout=120.0) as http:
            await asyncio.gather(*(session_loop(url, http, queue) for _ in range(size("FUZZ_HTTP_SESSIONS"))))

    before = len(settings.audit_path.read_bytes().splitlines())
    with mlgate_http(settings) as url:
        asyncio.run(go(url))
    row.lost = max(0, row.inputs - (len(settings.audit_path.read_bytes().splitlines()) - before))
    row.tampering = chain_broken(settings)
    return row


# --- load ----------------------------------------------------------------------------------------


def load_suite(workspace: Path, settings: Settings, inputs: Path) -> Row:
    clients, calls, runs = size("LOAD_CLIENTS"), size("LOAD_CALLS"), size("LOAD_RUNS")
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
    for round_ in range(size("KILLS_AUDIT")):
        acked += kill_after_or_count(row, workspace, "audit", f"r{round_}", rng.randint(1, 60))
        row.tampering += reopen_broken(workspace)
    row.lost = len(set(acked) - chained_units(workspace))
    return row


def crash_import(workspace: Path, settings: Settings, _: Path) -> Row:
    rng, acked, row = random.Random(2), [], Row("kill -9, dataset imports")
    for round_ in range(size("KILLS_IMPORT")):
        acked += kill_after_or_count(row, workspace, "import", f"i{round_}", rng.randint(1, 3))
        row.tampering += reopen_broken(workspace)
    store = store_for(workspace)
    visible = store.list_hashes()
    row.lost = len(set(acked) - set(visible))
    row.tampering += sum(bool(store.verify(h, registered=False).facts()["problems"]) for h in visible)
    row.tampering += len(store.registry.unvouched())
    return row


def governed_crash(mode: str, title: str) -> Callable[[Path, Settings, Path], Row]:
    """kill -9 inside governed work of `mode` (tests/reliability/crash_lab.py), restarting each
    time; its own workspace (a lab with a promotable run, an approver token) under `inputs`."""

    def suite(_: Path, __: Settings, inputs: Path) -> Row:
        workspace = crash_lab.WORKSPACES[mode](inputs)
        kills = size(f"KILLS_{mode.upper()}")
        outcome = crash_lab.crash_rounds(mode, workspace, kills, seed=len(mode))
        row = Row(title, inputs=kills, crashes=len(outcome["died"]))
        row.lost = sum(1 for p in outcome["problems"] if "acknowledged" in p or "no ok outcome" in p)
        row.tampering = len(outcome["problems"]) - row.lost
        row.note = f"{len(outcome['acked'])} units acknowledged; {len(outcome['repaired'])} repairs on restart: {str(outcome['repaired'])[:300]}"
        row.note += f"; problems: {outcome['problems'][:5]}" if outcome["problems"] else ""
        row.note += f"; died: {[d[-300:] for d in outcome['died'][:2]]}" if outcome["died"] else ""
        return row

    suite.__name__ = f"crash_{mode}"
    return suite


crash_run = governed_crash("run", "kill -9, mid-run (training)")
crash_promotion = governed_crash("promotion", "kill -9, promotion")
crash_approval = governed_crash("approval", "kill -9, approval")


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


SUITES = (fuzz_memory, fuzz_http, load_suite, crash_audit, crash_import, crash_run, crash_promotion, crash_approval, fault_suite)
SUITE_BY_NAME: dict[str, Callable[[Path, Settings, Path], Row]] = {s.__name__: s for s in SUITES}
HEADER = ("suite", "inputs tried", "crashes", "5xx", "lost records", "escapes", "detected tampering")


def print_table(rows: list[Row]) -> None:
    cells = [HEADER] + [(r.suite, r.inputs, r.crashes, r.http_5xx, r.lost, r.escapes, r.tampering) for r in rows]
    total = ("total", *(sum(r[i] for r in cells[1:]) for i in range(1, 7)))
    widths = [max(len(str(row[i])) for row in [*cells, total]) for i in range(7)]
    for n, row in enumerate([*cells, total]):
        print("| " + " | ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(f"{r.suite}: {r.seconds} s{'; ' + r.note.strip() if r.note.strip() else ''}")


def run_one(name: str, chosen_size: str) -> Row:
    """One suite on a fresh workspace (the entry point of a --jobs worker process)."""
    CHOSEN["size"] = chosen_size
    quiet()
    started = time.monotonic()
    print(f"-- {name} started", flush=True)
    row = with_fresh_workspace(SUITE_BY_NAME[name])
    row.seconds = round(time.monotonic() - started)
    print(f"-- {name} done in {row.seconds} s: {row}", flush=True)
    return row


def quiet() -> None:
    """One line per HTTP request or MLflow migration would bury the table."""
    for name in ("httpx", "httpx2", "mcp", "uvicorn", "uvicorn.access", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--suites", default=",".join(SUITE_BY_NAME), help="comma-separated suite names: " + ", ".join(SUITE_BY_NAME))
    parser.add_argument("--jobs", type=int, default=1, help="suites run at once, each in its own process")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen suites at the chosen size; print one table; exit 1 if a figure is off."""
    args = arguments(sys.argv[1:] if argv is None else argv)
    names = [n.strip() for n in args.suites.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE_BY_NAME]
    if unknown:
        sys.exit(f"unknown suite(s) {unknown}; known: {', '.join(SUITE_BY_NAME)}")
    print(f"bench.reliability --size {args.size}: {', '.join(f'{k}={size_of(args.size, k)}' for k in SIZES[args.size])}", flush=True)
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(run_one, names, [args.size] * len(names)))
    else:
        rows = [run_one(name, args.size) for name in names]
    print_table(rows)
    if any(r.off() for r in rows):
        sys.exit(1)


def size_of(chosen: str, name: str) -> int:
    return int(os.environ.get(f"MLGATE_REL_{name}", str(SIZES[chosen][name])))


if __name__ == "__main__":
    main()
