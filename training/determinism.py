"""Seeds and deterministic switches: same inputs + seed => identical predictions."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np

# cuBLAS needs a fixed workspace for deterministic GEMMs; it must be set before CUDA starts.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"
MAX_THREADS = 64


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)


def seed_torch(torch: Any, seed: int) -> None:
    """Seed torch (CPU and every CUDA device) and turn on deterministic algorithms."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def thread_count() -> int:
    """Threads per library, fixed by the launcher through OMP_NUM_THREADS (1 when unset or invalid)."""
    try:
        return min(max(int(os.environ.get("OMP_NUM_THREADS", "1")), 1), MAX_THREADS)
    except ValueError:
        return 1
