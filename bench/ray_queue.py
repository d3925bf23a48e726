"""N small training runs queued at once: the local executor (bubblewrap here, at most `parallel`
children side by side) against the Ray executor (a local Ray head with `parallel` CPUs, one CPU per
task, the same launcher under bubblewrap on the worker, inputs shipped and outputs pulled back).

Each run is one child on 400 rows (logistic regression, the workspace template's features.py).
Prints both wall times for the N runs and their ratio (Ray / local); starting the Ray head is
timed separately (a real deployment joins a running cluster). Where the ratio is above 1, what
dominates is Ray's per-task overhead (scheduling, a worker process per concurrent task, shipping
the four input files and the outputs through the object store), not training.
Usage: python -m bench.ray_queue [N] [PARALLEL], or python -m bench ray_queue --runs=N --parallel=P
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import pandas as pd

from server.executors import Executor
from server.sandbox import SandboxLauncher
from server.settings import RayExecutorSettings, SandboxLimits
from server.workspace import init_workspace

LIMITS = SandboxLimits(threads=1, wall_clock_seconds=600)
SPEC = {"model": {"type": "logistic_regression"}, "seed": 7, "feature_columns": ["income", "age"], "categorical_columns": [], "device": "cpu", "task": "fit_predict"}


def write_run(directory: Path, features_py: bytes, rows: int = 400) -> Path:
    """A run directory as tools/experiment_runner writes one: labelled training rows, unlabelled evaluation rows."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"income": rng.normal(50, 10, rows), "age": rng.integers(18, 80, rows).astype("float64")})
    frame["__row_id__"] = np.arange(rows, dtype="int64")
    labels = (frame["income"] + rng.normal(0, 5, rows) > 50).astype("int64")
    inputs = directory / "inputs"
    inputs.mkdir(parents=True)
    split = rows * 3 // 4
    frame.iloc[:split].assign(__label__=labels[:split]).to_parquet(inputs / "train.parquet", index=False)
    frame.iloc[split:].to_parquet(inputs / "eval.parquet", index=False)
    (inputs / "spec.json").write_text(json.dumps(SPEC))
    (inputs / "features.py").write_bytes(features_py)
    return directory


async def queued(executor: Executor, runs: list[Path], parallel: int) -> float:
    """Seconds to finish every run, at most `parallel` at once; raises when one fails."""
    limiter = anyio.CapacityLimiter(parallel)

    async def one(run_dir: Path) -> None:
        async with limiter:
            (await executor.run(run_dir)).raise_for_failure()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for run_dir in runs:
            group.start_soon(one, run_dir)
    return time.perf_counter() - started


def ray_executor(parallel: int, session: str) -> tuple[Executor, float]:
    import ray  # noqa: PLC0415 - only this benchmark needs a cluster

    from server.ray_executor import RayExecutor  # noqa: PLC0415

    started = time.perf_counter()
    ray.init(num_cpus=parallel, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=session, log_to_driver=False)
    executor = RayExecutor(RayExecutorSettings(address=ray.get_runtime_context().gcs_address), LIMITS)
    if executor.mode != "bwrap":
        raise RuntimeError("the Ray worker has no bubblewrap")
    return executor, time.perf_counter() - started


def _options(argv: list[str]) -> tuple[int, int]:
    """(runs, parallel) from `--runs=N --parallel=P` (python -m bench ray_queue --runs=N) or `N P`."""
    named = dict(a.lstrip("-").split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    positional = [int(a) for a in argv if a.isdigit()]
    return int(named.get("runs", positional[0] if positional else 8)), int(named.get("parallel", positional[1] if len(positional) > 1 else 2))


def main(argv: list[str] | None = None) -> None:
    count, parallel = _options(argv or [])
    root, session = Path(tempfile.mkdtemp(prefix="mlgate-bench-ray-")), tempfile.mkdtemp(prefix="mlgr-")
    try:
        features = (init_workspace(root / "ws") / "src/features.py").read_bytes()
        local = anyio.run(queued, SandboxLauncher(LIMITS), [write_run(root / f"local-{i}", features) for i in range(count)], parallel)
        executor, startup = ray_executor(parallel, session)
        anyio.run(queued, executor, [write_run(root / "warm", features)], 1)  # worker processes started once
        remote = anyio.run(queued, executor, [write_run(root / f"ray-{i}", features) for i in range(count)], parallel)
    finally:
        _stop_ray()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(session, ignore_errors=True)
    print(f"{count} queued runs, {parallel} at once: local {local:.2f} s ({local / count:.2f} s/run), "
          f"ray {remote:.2f} s ({remote / count:.2f} s/run); ratio ray/local {remote / local:.2f}; "
          f"ray head start {startup:.1f} s (not counted)")


def _stop_ray() -> None:
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
