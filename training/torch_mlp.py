"""torch_mlp: a multi-layer perceptron trained with Adam, on CUDA when visible (device auto).

The loop is kept lean because a small network is bound by per-step overhead, not arithmetic: the
rows live on the device as tensors, the order of each epoch is drawn on the device, batches are
gathered with index_select, Adam is fused (one kernel per step instead of several per tensor) and
the loss is summed on the device, so the host waits for the device once per epoch, when progress
is written. batch_size "auto" takes a larger batch on CUDA (training.spec); the size used is
reported. The effective batch size (batch_size x grad_accum_steps) is asserted on every optimizer
step that sees a full window of micro-batches, and reported; peak GPU memory is reported on CUDA.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.contract import MODEL_FILES
from training.determinism import seed_torch, thread_count
from training.errors import DeviceError, TrainingError
from training.families import FitOutcome, TrainingData
from training.outputs import ProgressWriter
from training.spec import RunSpec, TorchMLPParams

MODEL_FILE, ARCHITECTURE_FILE = MODEL_FILES["torch_mlp"]
PREDICT_BATCH_ROWS = 8192


def select_device(requested: str, cuda_available: bool | None = None) -> torch.device:
    """cpu when asked or when no CUDA device is visible (auto); raises DeviceError for cuda without one."""
    visible = torch.cuda.is_available() if cuda_available is None else cuda_available
    if requested == "cpu":
        return torch.device("cpu")
    if visible:
        return torch.device("cuda", 0)
    if requested == "cuda":
        raise DeviceError("device cuda requested but torch sees no CUDA device in the sandbox")
    return torch.device("cpu")


def make_optimizer(network: nn.Module, params: TorchMLPParams) -> torch.optim.Adam:
    """Fused Adam on CPU and CUDA alike: elementwise, so as deterministic as the per-tensor loop."""
    return torch.optim.Adam(network.parameters(), lr=params.lr, weight_decay=params.weight_decay, fused=True)


def build_network(n_features: int, params: TorchMLPParams) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_features
    for hidden in params.hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        layers += [nn.Dropout(params.dropout)] if params.dropout > 0 else []
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class EpochTrainer:
    """One epoch = shuffled micro-batches; the optimizer steps every grad_accum_steps of them."""

    def __init__(self, network: nn.Sequential, params: TorchMLPParams, device: torch.device, seed: int) -> None:
        self.network, self.params = network, params
        self.batch_size = params.batch_size_on(device.type)
        self.effective_batch_size = params.effective_batch_size_on(device.type)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.optimizer = make_optimizer(network, params)
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.optimizer_steps = 0

    def run(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One pass over the rows; returns the mean training loss (the epoch's only host sync)."""
        self.network.train()
        order = torch.randperm(len(x), generator=self.generator, device=x.device)
        accum, total_loss, window_rows = self.params.grad_accum_steps, torch.zeros((), device=x.device), 0
        starts = range(0, len(x), self.batch_size)
        for index, start in enumerate(starts, start=1):
            rows = order[start:start + self.batch_size]
            loss = self.loss_fn(self.network(x.index_select(0, rows)).squeeze(1), y.index_select(0, rows))
            (loss if accum == 1 else loss / accum).backward()
            total_loss.add_(loss.detach(), alpha=len(rows))
            window_rows += len(rows)
            if index % accum == 0 or index == len(starts):
                self._step(window_rows, interior=index % accum == 0 and index < len(starts))
                window_rows = 0
        return float(total_loss) / len(x)

    def _step(self, window_rows: int, interior: bool) -> None:
        """Every window but the epoch's last holds exactly the effective batch size."""
        if interior and window_rows != self.effective_batch_size:
            raise TrainingError(f"optimizer step saw {window_rows} rows, not the effective batch size "
                                f"{self.effective_batch_size}", "batch_size_mismatch")
        self.optimizer_steps += 1
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def predict(network: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    network.eval()
    with torch.no_grad():
        logits = [network(chunk).squeeze(1) for chunk in torch.split(x, PREDICT_BATCH_ROWS)]
    return torch.sigmoid(torch.cat(logits)).double().cpu().numpy()


def save_model(network: nn.Sequential, n_features: int, params: TorchMLPParams, model_dir: Path) -> None:
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, model_dir / MODEL_FILE)
    architecture = {"n_features": n_features, "hidden_sizes": list(params.hidden_sizes), "dropout": params.dropout,
                    "activation": "relu", "output": "one logit; score = sigmoid(logit)"}
    (model_dir / ARCHITECTURE_FILE).write_text(json.dumps(architecture, indent=2, sort_keys=True))


def device_facts(device: torch.device, trainer: EpochTrainer) -> dict:
    facts = {"model_format": "torch-state-dict", "threads": thread_count(), "torch_cuda": torch.version.cuda,
             "batch_size": trainer.batch_size, "effective_batch_size": trainer.effective_batch_size,
             "optimizer_steps": trainer.optimizer_steps}
    if device.type == "cuda":
        facts["gpu_name"] = torch.cuda.get_device_name(device)
        facts["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return facts


def fit_predict(spec: RunSpec, data: TrainingData, progress: ProgressWriter, model_dir: Path) -> FitOutcome:
    params: TorchMLPParams = spec.model.params
    seed_torch(torch, spec.seed)
    torch.set_num_threads(thread_count())
    device = select_device(spec.device)
    x_train = torch.from_numpy(data.x_train).to(device)
    y_train = torch.from_numpy(data.y_train.astype("float32")).to(device)
    network = build_network(data.x_train.shape[1], params).to(device)
    trainer = EpochTrainer(network, params, device, spec.seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    for epoch in range(1, params.epochs + 1):
        loss = trainer.run(x_train, y_train)
        progress.step(epoch, train_loss=loss)
    train_seconds, train_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    started = time.perf_counter()
    scores = predict(network, torch.from_numpy(data.x_eval).to(device))
    predict_seconds = time.perf_counter() - started
    save_model(network, data.x_train.shape[1], params, model_dir)
    facts = device_facts(device, trainer) | {"train_cpu_seconds": train_cpu_seconds}
    return FitOutcome(scores, train_seconds, predict_seconds, device.type, facts)
