"""torch_mlp efficiency: the real training child against a bare loop of the same network, same data.

Child: `python -m training` on a prepared run directory (torch_mlp with its default
hyperparameters: batch_size auto), launched by server.sandbox.SandboxLauncher (bwrap when installed,
else unconfined). Its time is the train_seconds of its result.json: the epochs only, not process
start, imports or feature preparation.
Bare: the same rows (training.runner.prepare on the same inputs), the same network, seed and batch
order, trained by the shortest loop that does the same work, in a process of its own with the child's
environment (thread counts, OpenMP wait policy). Two bare loops: with the child's optimizer (fused Adam: the ratio is pure loop
overhead; the bare loop must end with the child's weights, bit for bit) and with torch's default
Adam (what a hand-written loop would use). Runs alternate so machine noise hits both alike; the
minimum of the repeats is kept.
Prints child/bare (target <= 1.05) per device, and where CUDA is visible the child's GPU time
against its CPU time for the default configuration (target: the GPU not slower). The child's runs of
one device share a seed: their weights and predictions must be bit-identical (on CUDA too).
The GPU is measured first, so a run cut short still has its figures.

    python -m bench gpu_efficiency    (MLGATE_BENCH_ROWS=100000, MLGATE_BENCH_EPOCHS=20,
                                       MLGATE_BENCH_REPEATS=3, MLGATE_BENCH_THREADS=2;
                                       MLGATE_BENCH_JSON=FILE: the figures as JSON, rewritten after
                                       each device; MLGATE_BENCH_DIR=DIR: keep the run directories)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import pandas as pd
import torch
from torch import nn

from server.sandbox import SandboxLauncher, child_environment
from server.settings import SandboxLimits
from training.contract import BUILT_DIR, PREDICTIONS_FILE
from training.determinism import thread_count
from training.features_stage import build_stage
from training.runner import prepare
from training.spec import RunSpec, parse_spec
from training.torch_mlp import MODEL_FILE, build_network

ROWS = int(os.environ.get("MLGATE_BENCH_ROWS", "100000"))
EPOCHS = int(os.environ.get("MLGATE_BENCH_EPOCHS", "20"))
REPEATS = int(os.environ.get("MLGATE_BENCH_REPEATS", "3"))
THREADS = int(os.environ.get("MLGATE_BENCH_THREADS", "2"))
JSON_PATH = os.environ.get("MLGATE_BENCH_JSON")
KEEP_DIR = os.environ.get("MLGATE_BENCH_DIR")
SEED = 7
TARGET_RATIO = 1.05
NUMERIC = [f"x{i}" for i in range(12)]
FEATURES = [*NUMERIC, "segment"]
REPO_ROOT = Path(__file__).resolve().parent.parent
IDENTITY_FEATURES = "def build_features(frame):\n    return frame.copy()\n"


def write_inputs(run_dir: Path, rows: int, device: str) -> Path:
    """inputs/ of one torch_mlp run: 12 numbers and a category, a label tied to them, 80/20 rows."""
    rng = np.random.default_rng(SEED)
    frame = pd.DataFrame(rng.normal(size=(rows, len(NUMERIC))), columns=NUMERIC)
    frame["segment"] = rng.choice(np.array(["a", "b", "c"], dtype=object), rows)
    signal = frame["x0"] - 0.5 * frame["x1"] * frame["x2"] + (frame["segment"] == "a") + rng.normal(0, 1, rows)
    frame["__row_id__"] = np.arange(rows, dtype="int64")
    frame["__label__"] = (signal > signal.median()).astype("int64")
    inputs, cut = run_dir / "inputs", int(rows * 0.8)
    inputs.mkdir(parents=True)
    frame.iloc[:cut].to_parquet(inputs / "train.parquet", index=False)
    frame.iloc[cut:].drop(columns="__label__").to_parquet(inputs / "eval.parquet", index=False)
    (inputs / "features.py").write_text(IDENTITY_FEATURES)
    spec = {"model": {"type": "torch_mlp", "params": {"epochs": EPOCHS}}, "seed": SEED, "feature_columns": FEATURES,
            "categorical_columns": ["segment"], "device": device, "task": "fit_predict"}
    (inputs / "spec.json").write_text(json.dumps(spec))
    return run_dir


@dataclass
class ChildRun:
    train_seconds: float
    train_cpu_seconds: float
    device: str
    batch_size: int
    n_train: int


def run_child(launcher: SandboxLauncher, template: Path, run_dir: Path) -> ChildRun:
    """The real child on a fresh copy of the template's inputs, through the real launcher."""
    (run_dir / "inputs").mkdir(parents=True)
    for source in (template / "inputs").iterdir():
        (run_dir / "inputs" / source.name).write_bytes(source.read_bytes())
    outcome = anyio.run(launcher.run, run_dir)
    if not outcome.ok:
        raise RuntimeError(f"the child failed: {outcome.result}")
    result = outcome.result
    return ChildRun(result.train_seconds, result.details["train_cpu_seconds"], result.device, result.batch_size, result.n_train_rows)


def bare_loop(spec: RunSpec, x: np.ndarray, y: np.ndarray, device: str, fused: bool) -> tuple[float, float, nn.Module]:
    """The same network, seed and batch order as the child, in the shortest loop doing that work."""
    params = spec.model.params
    torch.manual_seed(spec.seed)
    network = build_network(x.shape[1], params).to(device)
    x_t, y_t = torch.from_numpy(x).to(device), torch.from_numpy(y.astype("float32")).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=params.lr, weight_decay=params.weight_decay, fused=fused or None)
    loss_fn, batch = nn.BCEWithLogitsLoss(), params.batch_size_on(device)
    generator = torch.Generator(device=device).manual_seed(spec.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(params.epochs):
        order = torch.randperm(len(x_t), generator=generator, device=device)
        for start in range(0, len(x_t), batch):
            rows = order[start:start + batch]
            loss = loss_fn(network(x_t.index_select(0, rows)).squeeze(1), y_t.index_select(0, rows))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, time.process_time() - cpu_started, network


def same_weights(network: nn.Module, child: dict[str, torch.Tensor]) -> bool:
    mine = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    return mine.keys() == child.keys() and all(torch.equal(mine[k], child[k]) for k in mine)


def outputs_digest(run_dir: Path) -> str:
    """sha256 of a child's weights (tensor bytes by name) and predictions (column bytes): what one seed
    must reproduce bit for bit. Not the files' bytes: torch.save writes a fresh serialization id."""
    digest = hashlib.sha256()
    weights = torch.load(run_dir / "outputs" / "model" / MODEL_FILE, map_location="cpu", weights_only=True)
    for name in sorted(weights):
        digest.update(name.encode() + weights[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    predictions = pd.read_parquet(run_dir / "outputs" / PREDICTIONS_FILE)
    for column in predictions.columns:
        digest.update(str(column).encode() + predictions[column].to_numpy().tobytes())
    return digest.hexdigest()


def run_bare(limits: SandboxLimits, template: Path, device: str, fused: bool, child: Path | None) -> dict[str, object]:
    """The bare loop in a process of its own with the child's environment (threads, OpenMP wait
    policy), so the two differ only in their loops; it times the loop alone."""
    env = child_environment(limits, str(REPO_ROOT), tempfile.gettempdir(), os.environ)
    argv = [sys.executable, "-m", "bench.gpu_efficiency", "--bare", str(template / "inputs"), device, str(int(fused)), str(child or "-")]
    done = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(launcher: SandboxLauncher, root: Path, device: str) -> dict[str, object]:
    """REPEATS rounds of child, bare (fused Adam) and bare (default Adam) on one device, the child
    first in even rounds and last in odd ones; wall and CPU seconds, minimum over rounds."""
    template = write_inputs(root / f"template-{device}", ROWS, device)
    times: dict[str, list[float]] = {k: [] for k in ("child", "child_cpu", "bare_fused", "bare_fused_cpu", "bare_plain")}
    identical, digests = True, set()
    for repeat in range(REPEATS):
        run_dir = root / f"run-{device}-{repeat}"
        if repeat % 2:
            plain = run_bare(launcher.limits, template, "cpu" if device == "cpu" else "cuda", False, None)
        child = run_child(launcher, template, run_dir)
        digests.add(outputs_digest(run_dir))
        fused = run_bare(launcher.limits, template, child.device, True, run_dir / "outputs" / "model" / MODEL_FILE)
        if not repeat % 2:
            plain = run_bare(launcher.limits, template, child.device, False, None)
        identical = identical and fused["identical"]
        for key, value in (("child", child.train_seconds), ("child_cpu", child.train_cpu_seconds), ("bare_fused", fused["seconds"]),
                           ("bare_fused_cpu", fused["cpu_seconds"]), ("bare_plain", plain["seconds"])):
            times[key].append(value)
    return {"device": child.device, "batch_size": child.batch_size, "identical": identical, "n_train": child.n_train,
            "child_runs": REPEATS, "reproducible": len(digests) == 1 if REPEATS > 1 else None, **{key: min(values) for key, values in times.items()}}


def bare_main(argv: list[str]) -> None:
    """`--bare INPUTS DEVICE FUSED CHILD_WEIGHTS`: time the bare loop; print {seconds, cpu_seconds, identical}."""
    inputs, device, fused, weights = Path(argv[0]), argv[1], argv[2] == "1", Path(argv[3])
    torch.set_num_threads(thread_count())
    spec = parse_spec((inputs / "spec.json").read_bytes())
    build_stage(inputs.parent)  # built/ beside the template's inputs/, as the child's features stage writes it
    data, _, _ = prepare(spec, inputs, inputs.parent / BUILT_DIR)
    seconds, cpu_seconds, network = bare_loop(spec, data.x_train, data.y_train, device, fused)
    identical = weights.name != "-" and same_weights(network, torch.load(weights, weights_only=True))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "identical": identical}))


def report(figures: dict[str, object]) -> None:
    ratio = figures["child"] / figures["bare_fused"]
    print(f"device={figures['device']} batch_size={figures['batch_size']} train_rows={figures['n_train']} epochs={EPOCHS} "
          f"threads={THREADS}: child train {figures['child']:.2f}s, bare loop (fused Adam) {figures['bare_fused']:.2f}s, "
          f"bare loop (default Adam) {figures['bare_plain']:.2f}s")
    print(f"  CPU seconds: child {figures['child_cpu']:.2f}, bare loop (fused Adam) {figures['bare_fused_cpu']:.2f}, "
          f"child/bare = {figures['child_cpu'] / figures['bare_fused_cpu']:.3f} (less sensitive to other load than wall time)")
    print(f"  child/bare = {ratio:.3f} (target <= {TARGET_RATIO}) {'OK' if ratio <= TARGET_RATIO else 'OVER'}; "
          f"child/bare(default Adam) = {figures['child'] / figures['bare_plain']:.3f}; "
          f"bare loop ends with the child's weights bit for bit: {'yes' if figures['identical'] else 'NO'}")
    same = {True: "yes", False: "NO", None: "not checked (one run)"}[figures["reproducible"]]
    print(f"  the child's {figures['child_runs']} runs (seed {SEED}) give bit-identical weights and predictions: {same}")


def save(figures: dict[str, object]) -> None:
    """MLGATE_BENCH_JSON: the figures so far, with the settings they were measured under."""
    if JSON_PATH:
        settings = {"rows": ROWS, "epochs": EPOCHS, "repeats": REPEATS, "threads": THREADS, "seed": SEED}
        Path(JSON_PATH).write_text(json.dumps({"settings": settings, **figures}, indent=2))


def measure_all(launcher: SandboxLauncher, root: Path) -> None:
    """GPU first (the scarcer machine), then CPU; the figures are saved after each device."""
    figures: dict[str, object] = {"launcher_mode": launcher.mode, "cuda_visible": torch.cuda.is_available()}
    devices = (("gpu", "auto"), ("cpu", "cpu")) if torch.cuda.is_available() else (("cpu", "cpu"),)
    for name, device in devices:
        figures[name] = measure(launcher, root, device)
        report(figures[name])
        save(figures)
    if "gpu" not in figures:
        print("no CUDA device visible: GPU vs CPU not measured")
        return
    speed = figures["gpu"]["child"] / figures["cpu"]["child"]
    save({**figures, "gpu_over_cpu": speed})
    print(f"default configuration, child train time GPU/CPU = {speed:.3f} (target <= 1.0) {'OK' if speed <= 1.0 else 'SLOWER'}")


def main() -> None:
    launcher = SandboxLauncher(SandboxLimits(threads=THREADS, wall_clock_seconds=3600), allow_unconfined=True)
    print(f"launcher mode {launcher.mode} (bwrap: {launcher.layout.bwrap}); {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    if KEEP_DIR:
        Path(KEEP_DIR).mkdir(parents=True, exist_ok=True)
        measure_all(launcher, Path(tempfile.mkdtemp(dir=KEEP_DIR)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        measure_all(launcher, Path(tmp))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        bare_main(sys.argv[2:])
    else:
        main()
