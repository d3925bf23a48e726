"""How cost grows: with rows, with the number of runs, with the length of the audit chain.

- Rows: load_dataset and run_experiment (the workspace template's xgboost config, temporal split,
  bubblewrap children) on credit datasets of 10k, 100k and 1M rows, through an in-memory MCP client
  in a server process of its own per size: wall time and the server process's peak RSS per call
  (VmHWM, reset before each call through /proc/self/clear_refs; the training children are other
  processes and not counted), and the children's own train time, so the rest is overhead.
- Runs: list_runs (MCP call) and the best-prior-run query (the one run_experiment makes) with 100
  and 10 000 runs in the project's experiment of a sqlite MLflow store, the runs created directly
  through server/tracking.py (not trained). Median of several calls.
- Audit: `verify` of a chain of 10^4 and 10^6 records appended through server/audit.AuditChain,
  and `mlgate audit search` for one record of it (two verifying walks).
Ratios compare the largest size with the smallest (time per row, per run, per record).

    python -m bench scale            full sizes (about an hour on 2 busy cores)
    python -m bench scale --quick    2k/20k rows, 100/1000 runs, 10^4/10^5 records
    python -m bench scale --only=runs (or audit, rows): one part
run_experiment is called twice per size; the table shows the second call (a server that has
trained before) with the first in brackets (MLflow store creation, imports); the peak RSS and the
children's train time are the second call's.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client

from policies.leakage import CLEAN, LEAKAGE_TAG
from server.app import build_server
from server.audit import AuditChain, AuditOptions, verify
from server.audit.search import AuditQuery, search
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import build_ports
from server.settings import load_settings
from server.tracking import experiment_name
from server.workspace import init_workspace
from tools.run_views import RUN_KIND_TAG
from tools.run_evidence import best_prior_filter

REPO_ROOT = Path(__file__).resolve().parent.parent
FULL = {"rows": (10_000, 100_000, 1_000_000), "runs": (100, 10_000), "records": (10_000, 1_000_000)}
QUICK = {"rows": (2_000, 20_000), "runs": (100, 1_000), "records": (10_000, 100_000)}
QUERY_REPEATS = 7
REASONING = {"hypothesis_category": "baseline", "change_description": "Scale benchmark of the default model.", "expected_effect": "Figures for how cost grows with rows."}


# --- rows: one server process per size -----------------------------------------------------------


def dataset_workspace(root: Path, rows: int) -> tuple[Path, str]:
    """A fresh workspace with a `rows`-row credit dataset imported and chosen in its config."""
    workspace = init_workspace(root / f"ws-{rows}")
    content_hash = import_files(workspace, [write_credit_csv(root / f"credit-{rows}.csv", rows=rows)]).added.content_hash
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = content_hash
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    GitRepo(workspace).commit_all("benchmark dataset")
    return workspace, content_hash


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def timed_call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[float, float, Any]:
    """(seconds, peak RSS MB of this process during the call, structured result)."""
    reset_peak_rss()
    started = time.perf_counter()
    result = await client.call_tool(tool, arguments)
    seconds = time.perf_counter() - started
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.structured_content or result.content}")
    return seconds, peak_rss_mb(), result.structured_content


async def size_worker(workspace: Path, content_hash: str) -> dict[str, Any]:
    """In the server process of one size: load_dataset, then run_experiment, each measured."""
    settings = load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    async with Client(build_server(settings, ports)) as client:
        load_s, load_mb, _ = await timed_call(client, "load_dataset", {"content_hash": content_hash})
        first_s, _, _ = await timed_call(client, "run_experiment", {"reasoning": REASONING})
        # the second run: the store, imports and caches of a server that has trained before
        run_s, run_mb, result = await timed_call(client, "run_experiment", {"reasoning": REASONING, "config": {"experiment.seed": 43}})
    metrics = ports.tracking.get_run(result["run_id"])["metrics"]
    return {"load_s": load_s, "load_mb": load_mb, "first_s": first_s, "run_s": run_s, "run_mb": run_mb, "train_s": metrics["train_seconds_total"]}


def measure_rows(root: Path, rows: int) -> dict[str, Any]:
    workspace, content_hash = dataset_workspace(root, rows)
    argv = [sys.executable, "-m", "bench.scale", "--size-worker", str(workspace), content_hash]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"size worker for {rows} rows failed: {done.stderr[-2000:]}")
    return {"rows": rows, **json.loads(done.stdout.strip().splitlines()[-1])}


def report_rows(figures: list[dict[str, Any]]) -> None:
    print("rows | load_dataset s | load peak RSS MB | run_experiment s (first call) | run peak RSS MB | child train s | overhead s (share)")
    for f in figures:
        overhead = f["run_s"] - f["train_s"]
        print(f"{f['rows']:>9} | {f['load_s']:.2f} | {f['load_mb']:.0f} | {f['run_s']:.2f} ({f['first_s']:.2f}) | {f['run_mb']:.0f} | "
              f"{f['train_s']:.2f} | {overhead:.2f} ({overhead / f['run_s']:.0%})")
    small, large = figures[0], figures[-1]
    scale = large["rows"] / small["rows"]
    print(f"{large['rows']} vs {small['rows']} rows (x{scale:.0f}): load_dataset time per row x{large['load_s'] / small['load_s'] / scale:.2f}, "
          f"run_experiment time per row x{large['run_s'] / small['run_s'] / scale:.2f}, run peak RSS x{large['run_mb'] / small['run_mb']:.1f}")


# --- runs: list_runs and the best-prior-run query ---------------------------------------------------


DATASET = "d" * 64  # every run on one dataset, as the best-prior-run query filters by it


def create_runs(tracking: Any, experiment_id: str, count: int, rng: random.Random) -> None:
    """`count` finished experiment runs as run_experiment leaves them (kind, leakage, outcome tags;
    validation metrics), written straight into the store."""
    tags = {RUN_KIND_TAG: "experiment", LEAKAGE_TAG: CLEAN}
    for _ in range(count):
        run_id = tracking.start_run(experiment_id, tags | {"outcome": rng.choice(["confirmed", "neutral", "negative"])})
        tracking.log_params(run_id, {"dataset_content_hash": DATASET})
        tracking.log_metrics(run_id, {"val_roc_auc": rng.uniform(0.6, 0.9), "val_pr_auc": rng.uniform(0.3, 0.7)})
        tracking.end_run(run_id, "FINISHED")


def median_seconds(call: Any, repeats: int = QUERY_REPEATS) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def list_runs_seconds(settings: Any, ports: Any) -> float:
    async with Client(build_server(settings, ports)) as client:
        samples = []
        for _ in range(QUERY_REPEATS):
            started = time.perf_counter()
            result = await client.call_tool("list_runs", {"sort_by": "roc_auc", "max_results": 20})
            assert not result.is_error, result.content
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure_runs(root: Path, counts: tuple[int, ...]) -> list[dict[str, Any]]:
    workspace = init_workspace(root / "ws-runs")
    settings = load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    standards = yaml.safe_load((workspace / "configs/project_standards.yaml").read_text())
    experiment_id = ports.tracking.get_or_create_experiment(experiment_name(standards["client_name"], standards["project_name"]))
    extra = f"tags.`{RUN_KIND_TAG}` = 'experiment' and {best_prior_filter(DATASET)}"
    figures, made, rng = [], 0, random.Random(3)
    for count in counts:
        started = time.perf_counter()
        create_runs(ports.tracking, experiment_id, count - made, rng)
        create_s, made = time.perf_counter() - started, count
        best = median_seconds(lambda: ports.tracking.best_prior_run(experiment_id, "val_roc_auc", extra_filter=extra))
        figures.append({"runs": count, "create_s": create_s, "list_s": anyio.run(list_runs_seconds, settings, ports), "best_s": best})
    return figures


def report_runs(figures: list[dict[str, Any]]) -> None:
    print("runs | list_runs ms (median) | best prior run ms (median) | creating them s")
    for f in figures:
        print(f"{f['runs']:>6} | {1000 * f['list_s']:.0f} | {1000 * f['best_s']:.0f} | {f['create_s']:.1f}")
    small, large = figures[0], figures[-1]
    print(f"{large['runs']} vs {small['runs']} runs (x{large['runs'] / small['runs']:.0f}): list_runs x{large['list_s'] / small['list_s']:.2f}, "
          f"best prior run x{large['best_s'] / small['best_s']:.2f}")


# --- audit chain ---------------------------------------------------------------------------------


def measure_audit(root: Path, count: int) -> dict[str, Any]:
    """Append `count` outcome records through AuditChain (fsync every 4096), then verify the file."""
    path = root / f"audit-{count}" / "audit.jsonl"
    chain = AuditChain(path, options=AuditOptions(fsync_every=4096, fsync_interval_ms=60_000))
    started = time.perf_counter()
    for i in range(count):
        chain.append({"kind": "outcome", "status": "ok", "tool": "list_runs", "principal": "bench", "call": i})
    chain.close()
    append_s = time.perf_counter() - started
    started = time.perf_counter()
    report = verify(path)
    verify_s = time.perf_counter() - started
    if not report.ok or report.count != count:
        raise RuntimeError(f"verify did not accept the generated chain: {report.summary()}")
    started = time.perf_counter()
    found = search(path, AuditQuery(fields=(("call", "17"),)), lambda record: None)
    search_s = time.perf_counter() - started
    if found.matched != 1:
        raise RuntimeError(f"search found {found.matched} records for one call")
    return {"records": count, "append_s": append_s, "verify_s": verify_s, "search_s": search_s, "mb": path.stat().st_size / 2**20}


def report_audit(figures: list[dict[str, Any]]) -> None:
    print("records | verify s | verify µs/record | search s (verifies twice) | file MB | append s")
    for f in figures:
        print(f"{f['records']:>9} | {f['verify_s']:.2f} | {1e6 * f['verify_s'] / f['records']:.1f} | {f['search_s']:.2f} | {f['mb']:.0f} | {f['append_s']:.1f}")
    small, large = figures[0], figures[-1]
    per_record = (large["verify_s"] / large["records"]) / (small["verify_s"] / small["records"])
    print(f"{large['records']} vs {small['records']} records: verify time per record x{per_record:.2f}")


def main(argv: list[str] | None = None) -> None:
    """Options: --quick (smaller sizes); --only=audit|runs|rows (one part)."""
    options = argv if argv is not None else sys.argv[1:]
    sizes = QUICK if "--quick" in options else FULL
    only = next((o.split("=", 1)[1] for o in options if o.startswith("--only=")), None)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; sizes {sizes}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if only in (None, "audit"):
            report_audit([measure_audit(root, n) for n in sizes["records"]])
        if only in (None, "runs"):
            report_runs(measure_runs(root, sizes["runs"]))
        if only in (None, "rows"):
            report_rows([measure_rows(root, n) for n in sizes["rows"]])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--size-worker"]:
        print(json.dumps(anyio.run(size_worker, Path(sys.argv[2]), sys.argv[3])))
    else:
        main()
