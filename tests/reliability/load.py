"""Many agents on one workspace at once, shared by tests/reliability/test_load.py and
bench/reliability.py: N clients, half `mlgate serve` stdio subprocesses and half streamable-HTTP
sessions on one mlgate HTTP app, each making M mixed calls (tests/reliability/calls.py) and a few
small real runs. What must hold afterwards (`load_problems`): every call answered acceptably and
audited once per principal and tool, the chain verifies, MLflow holds exactly the runs that
succeeded, and no "database is locked" reached a client."""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client

from server.audit import verify
from server.auth import TokenStore
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.settings import Settings
from tests.e2e.transports import mlgate_http, stdio, streamable_http
from tests.reliability.calls import mixed_calls
from tests.reliability.checks import problems

CALL_TIMEOUT_S = 600
RUN_REASONING = {"hypothesis_category": "baseline", "change_description": "Baseline xgboost on the governed credit data.", "expected_effect": "A reference roc_auc for later changes."}


@dataclass
class Call:
    client: str
    tool: str
    seconds: float
    ok: bool
    problems: list[str] = field(default_factory=list)


def prepare(workspace: Path, scratch: Path, rows: int = 400) -> str:
    """Import a small credit dataset, point the experiment at it with a quick model, commit."""
    content_hash = import_files(workspace, [write_credit_csv(scratch / "credit.csv", rows=rows)]).added.content_hash
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = content_hash
    document["model"]["params"] = {"n_estimators": 10, "max_depth": 3}
    document["evaluation"]["bootstrap_samples"] = 50
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    GitRepo(workspace).commit_all("use the credit dataset")
    return content_hash


def plan(clients: int, calls: int, runs: int, dataset: str, seed: int) -> list[list[tuple[str, dict[str, Any]]]]:
    """Each client's calls; the first `runs` clients also make one run_experiment, midway."""
    rng = random.Random(seed)
    plans = [mixed_calls(rng, calls, dataset) for _ in range(clients)]
    for index in range(min(runs, clients)):
        plans[index].insert(calls // 2, ("run_experiment", {"reasoning": RUN_REASONING}))
    return plans


async def drive(name: str, client: Client, calls: list[tuple[str, dict[str, Any]]], private: list[str], out: list[Call]) -> None:
    async with client:
        for tool, arguments in calls:
            started = time.perf_counter()
            try:
                with anyio.fail_after(CALL_TIMEOUT_S):
                    result = await client.call_tool(tool, arguments)
            except Exception as exc:  # noqa: BLE001 - a transport failure is a finding, not a test crash
                out.append(Call(name, tool, time.perf_counter() - started, False, [f"client failure {type(exc).__name__}: {str(exc)[:200]}"]))
                return
            text = " ".join(getattr(b, "text", "") for b in result.content or [])
            found = problems(result, private) + (["database is locked reached the client"] if "database is locked" in text else [])
            out.append(Call(name, tool, time.perf_counter() - started, not result.is_error, found))


async def run_load(workspace: Path, settings: Settings, clients: int, calls: int, runs: int, dataset: str, seed: int = 7) -> list[Call]:
    """Drive `clients` concurrent clients (even: stdio, odd: streamable HTTP) through their plans."""
    plans, out = plan(clients, calls, runs, dataset, seed), []
    private = [str(workspace), str(settings.state_dir)]
    tokens = {i: TokenStore(settings.state_dir).create(f"load-{i}", "agent") for i in range(1, clients, 2)}
    with mlgate_http(settings) as url:
        async with anyio.create_task_group() as group:
            for i, calls_of in enumerate(plans):
                client = streamable_http(url, tokens[i]) if i in tokens else stdio(workspace, MLGATE_PRINCIPAL=f"load-{i}", MLGATE_ROLE="agent")
                group.start_soon(drive, f"load-{i}", client, calls_of, private, out)
    return out


def audited_calls(audit_path: Path) -> Counter:
    """(principal, tool) -> calls the chain records: one decision per call, or an outcome for a
    call that broke before its decision."""
    counted: Counter = Counter()
    for line in audit_path.read_bytes().splitlines():
        record = json.loads(line)
        first = record.get("kind") == "decision" or (record.get("kind") == "outcome" and record.get("stage") in ("validate", "gather"))
        if first and "tool" in record:
            counted[(record.get("principal"), record["tool"])] += 1
    return counted


def mlflow_runs(settings: Settings) -> Counter:
    """Runs in the tracking database by status."""
    with sqlite3.connect(f"file:{settings.state_dir / 'mlflow.db'}?mode=ro", uri=True) as db:
        return Counter(dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()))


def load_problems(calls: list[Call], settings: Settings, expected: int) -> list[str]:
    """Everything wrong after a load: bad answers, calls missing, unaudited calls, a broken chain,
    MLflow runs that do not match the successful run_experiment calls."""
    found = [f"{c.client} {c.tool}: {p}" for c in calls for p in c.problems]
    if len(calls) != expected:
        found.append(f"{expected - len(calls)} call(s) never answered")
    made = Counter((c.client, c.tool) for c in calls)
    audited = audited_calls(settings.audit_path)
    found += [f"{who} {tool}: {n} call(s), {audited[(who, tool)]} audited" for (who, tool), n in made.items() if audited[(who, tool)] != n]
    report = verify(settings.audit_path)
    found += [] if report.ok else [f"chain does not verify: {report.summary()}"]
    succeeded, runs = sum(c.ok for c in calls if c.tool == "run_experiment"), mlflow_runs(settings)
    if runs.get("FINISHED", 0) != succeeded or runs.get("RUNNING", 0):
        found.append(f"MLflow holds {dict(runs)} for {succeeded} successful run_experiment call(s)")
    return found


def latency_table(calls: list[Call]) -> dict[str, dict[str, float]]:
    """Per tool: calls, p50 and p99 seconds."""
    table = {}
    for tool in sorted({c.tool for c in calls}):
        seconds = sorted(c.seconds for c in calls if c.tool == tool)
        p99 = seconds[min(len(seconds) - 1, int(round(0.99 * (len(seconds) - 1))))]
        table[tool] = {"calls": len(seconds), "p50_s": round(statistics.median(seconds), 3), "p99_s": round(p99, 3)}
    return table
