"""What a successful child says about itself, reduced to what the server can vouch for.

A child's result.json is written by the process that imported features.py, and its facts reach
MLflow params the agent reads (hardware, timings): free text or full-precision numbers there are a
channel out of the sandbox. So library versions come from the server's own environment (the child
runs the server's interpreter and venv), a GPU name only when the host has a GPU of that name, the
batch sizes only when they are the spec's, and durations and memory to METRIC_DIGITS
significant digits.
"""

from __future__ import annotations

import functools
from pathlib import Path

from server.sandbox_vocabulary import significant
from training.contract import SuccessResult, library_versions
from training.spec import RunSpec

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
SECONDS_FIELDS = ("train_seconds", "predict_seconds", "inference_latency_ms_per_row", "wall_seconds")


@functools.cache
def host_library_versions() -> dict[str, str]:
    return library_versions()


@functools.cache
def host_gpu_names() -> frozenset[str]:
    """Model names of the host's NVIDIA GPUs, from the driver's /proc files (empty without one)."""
    names = set()
    for info in sorted(NVIDIA_GPUS.glob("*/information")) if NVIDIA_GPUS.is_dir() else []:
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                names.add(line.split(":", 1)[1].strip())
    return frozenset(names)


def _expected_batch(spec: RunSpec | None, device: str) -> tuple[int | None, int | None]:
    """(batch_size, effective batch size) the spec means on `device` (batch_size auto: per device)."""
    if spec is None or spec.model.type != "torch_mlp":
        return None, None
    return spec.model.params.batch_size_on(device), spec.model.params.effective_batch_size_on(device)


def vouched(result: SuccessResult, spec: RunSpec | None) -> SuccessResult:
    """The child's success facts with every exported field replaced or bounded by the server."""
    batch, effective = _expected_batch(spec, result.device)
    peak = result.peak_gpu_memory_bytes
    return result.model_copy(update={
        **{name: significant(getattr(result, name)) for name in SECONDS_FIELDS},
        "library_versions": host_library_versions(),
        "gpu_name": result.gpu_name if result.gpu_name in host_gpu_names() else None,
        "batch_size": batch if result.batch_size == batch else None,
        "effective_batch_size": effective if result.effective_batch_size == effective else None,
        "peak_gpu_memory_bytes": None if peak is None else int(significant(float(peak))),
    })
