"""run_experiment end to end against the same training and MLflow logging done bare in one process.

Governed: an in-memory MCP client calls run_experiment on a 10k-row credit dataset (xgboost,
temporal split): enforcement, dataset verification, one sandboxed child per stage (validation fold,
final fit), the logistic baseline fitted in the server, server-side metrics with bootstrap CIs,
MLflow Tier 1-3 and artifacts.
Bare: the same fits through the same training code called in this process, on the same inputs
(the baseline through tools.baseline), plus one MLflow run logging the same params, metrics and
model files. Target: overhead
<= 1.0 s + 5% of the bare time. Also prints the server process's peak RSS during the governed
run and the variance of test roc_auc over three seeds.
Usage: python -m bench.run_experiment_overhead [ROWS]
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client

from server.app import build_server
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import build_ports
from server.settings import load_settings
from server.workspace import init_workspace

REASONING = {"hypothesis_category": "baseline", "change_description": "Benchmark run of the default xgboost model.", "expected_effect": "A figure for the overhead of governance."}


def governed_workspace(root: Path, rows: int) -> Path:
    workspace = init_workspace(root / "ws")
    content_hash = import_files(workspace, [write_credit_csv(root / "credit.csv", rows=rows)]).added.content_hash
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = content_hash
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    GitRepo(workspace).commit_all("benchmark dataset")
    return workspace


async def governed_runs(workspace: Path, seeds: list[int]) -> list[dict[str, Any]]:
    settings = load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    results = []
    async with Client(build_server(settings, ports)) as client:
        for seed in seeds:
            started = time.perf_counter()
            result = await client.call_tool("run_experiment", {"reasoning": REASONING, "config": {"experiment.seed": seed}})
            assert not result.is_error, result.structured_content
            results.append({**result.structured_content, "seconds": time.perf_counter() - started})
    return results


def bare_run(workspace: Path, run_id: str, tracking_dir: Path) -> float:
    """The governed run's own stage inputs, trained in this process, logged to a fresh MLflow store."""
    import mlflow

    from tools.baseline import fit_baseline
    from training.features_stage import build_stage
    from training.runner import run as train_stage

    settings = load_settings(workspace)
    stages = sorted((settings.state_dir / "runs" / run_id).iterdir())
    copies = []
    for stage in stages:
        copy = tracking_dir / "stages" / stage.name
        (copy / "outputs").mkdir(parents=True)
        (copy / "inputs").symlink_to(stage / "inputs")
        copies.append(copy)
    mlflow.set_tracking_uri(f"sqlite:///{tracking_dir / 'bare.db'}")
    started = time.perf_counter()
    experiment = mlflow.create_experiment("bare", artifact_location=(tracking_dir / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        for copy in copies:
            build_stage(copy)  # the governed run's first sandbox, here in the same process
            result = train_stage(copy)
            mlflow.log_metrics({f"{copy.name}_train_seconds": result.train_seconds})
            mlflow.log_artifacts(str(copy / "outputs" / "model"), artifact_path=f"model/{copy.name}")
        bare_baseline(next(s for s in stages if s.name == "final") / "inputs", fit_baseline)
        mlflow.log_params(yaml.safe_load((workspace / "configs/experiment.yaml").read_text())["model"]["params"])
    return time.perf_counter() - started


def bare_baseline(inputs: Path, fit_baseline: Any) -> None:
    """The logistic baseline on the final stage's rows, as the server fits it."""
    import json

    import numpy as np
    import pandas as pd

    spec = json.loads((inputs / "spec.json").read_text())
    train, evaluation = pd.read_parquet(inputs / "train.parquet"), pd.read_parquet(inputs / "eval.parquet")
    frame = pd.concat([train, evaluation], ignore_index=True)
    labels = np.concatenate([train["__label__"].to_numpy(), np.zeros(len(evaluation), dtype="int64")])
    rows = (np.arange(len(train)), np.arange(len(train), len(frame)))
    fit_baseline(frame, labels, rows, (spec["feature_columns"], spec["categorical_columns"]), spec["seed"])


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    rows = int(args[0]) if args else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workspace = governed_workspace(root, rows)
        warm = anyio.run(governed_runs, workspace, [42])[0]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        runs = anyio.run(governed_runs, workspace, [42, 1, 2])
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bare = [bare_run(workspace, runs[0]["run_id"], root / f"bare{i}") for i in range(2)]
    governed_s, bare_s = runs[0]["seconds"], min(bare)
    overhead, allowed = governed_s - bare_s, 1.0 + 0.05 * bare_s
    aucs = [r["metrics"]["roc_auc"]["value"] for r in runs]
    print(f"rows={rows} governed={governed_s:.2f}s (warm-up {warm['seconds']:.2f}s) bare={bare_s:.2f}s overhead={overhead:.2f}s allowed={allowed:.2f}s ratio={governed_s / bare_s:.2f} {'OK' if overhead <= allowed else 'OVER'}")
    print(f"server peak RSS {peak_rss_mb:.0f} MB (before the measured runs {rss_before / 1024:.0f} MB)")
    print(f"test roc_auc over seeds 42,1,2: {', '.join(f'{a:.4f}' for a in aucs)} variance={statistics.pvariance(aucs):.6f}")


if __name__ == "__main__":
    main()
