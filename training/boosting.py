"""xgboost (hist), trained with the native API so progress can be reported per chunk of rounds.

On CUDA (device auto or cuda, with a GPU in the sandbox) the same hist method runs on the GPU
(`device: cuda`). Its histograms are summed with pre-rounding, so a fixed seed gives bit-identical
trees on the same GPU model, driver and xgboost version; CPU and GPU trees differ from each other.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _import_xgboost() -> ModuleType:
    """xgboost without its optional scikit-learn wrappers (unused: the native API trains here):
    importing scikit-learn would cost every xgboost child ~0.6 s. scikit-learn stays importable
    afterwards."""
    blocked = "sklearn" not in sys.modules
    if blocked:
        sys.modules["sklearn"] = None  # type: ignore[assignment] - makes `import sklearn` raise ImportError
    try:
        import xgboost
    finally:
        if blocked:
            del sys.modules["sklearn"]
    return xgboost


xgb = _import_xgboost()

from training.contract import MODEL_FILES
from training.determinism import thread_count
from training.errors import DeviceError
from training.families import FitOutcome, TrainingData
from training.outputs import ProgressWriter
from training.spec import RunSpec, XGBoostParams, boosting_chunk

MODEL_FILE = MODEL_FILES["xgboost"][0]
DEV = Path("/dev")
NVIDIA_CONTROL_DEVICE = "nvidiactl"


class ChunkProgress(xgb.callback.TrainingCallback):
    """Writes one progress line every `chunk` boosting rounds with the training log loss."""

    def __init__(self, progress: ProgressWriter, rounds: int) -> None:
        super().__init__()
        self._progress, self._rounds = progress, rounds
        self._chunk = boosting_chunk(rounds)

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        done = epoch + 1
        if done % self._chunk == 0 or done == self._rounds:
            self._progress.step(math.ceil(done / self._chunk), train_loss=evals_log["train"]["logloss"][-1])
        return False


def booster_params(params: XGBoostParams, seed: int, device: str) -> dict[str, Any]:
    native = params.model_dump(exclude={"n_estimators", "learning_rate"})
    return native | {
        "eta": params.learning_rate,
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "seed": seed,
        "nthread": thread_count(),
        "device": device,
    }


def cuda_visible(environ: Mapping[str, str] = os.environ, dev: Path = DEV) -> bool:
    """A CUDA device the child may use: NVIDIA device nodes bound into the sandbox, not hidden by
    CUDA_VISIBLE_DEVICES, and an xgboost built with CUDA. Checked without initialising CUDA."""
    if environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    nodes = (dev / NVIDIA_CONTROL_DEVICE).exists() and any(dev.glob("nvidia[0-9]*"))
    return nodes and bool(xgb.build_info().get("USE_CUDA"))


def select_device(requested: str, cuda_available: bool) -> str:
    """cuda when asked (or auto) and visible, cpu otherwise; raises DeviceError for cuda without one.
    CPU and GPU histograms give different trees, so the device used is reported with the run."""
    if requested == "cpu":
        return "cpu"
    if cuda_available:
        return "cuda"
    if requested == "cuda":
        raise DeviceError("device cuda requested but no NVIDIA device is visible in the sandbox")
    return "cpu"


def fit_predict(spec: RunSpec, data: TrainingData, progress: ProgressWriter, model_dir: Path) -> FitOutcome:
    params = spec.model.params
    device = select_device(spec.device, cuda_visible())
    dtrain = xgb.DMatrix(data.x_train, label=data.y_train, nthread=thread_count())
    started = time.perf_counter()
    booster = xgb.train(
        booster_params(params, spec.seed, device), dtrain, num_boost_round=params.n_estimators,
        evals=[(dtrain, "train")], verbose_eval=False, callbacks=[ChunkProgress(progress, params.n_estimators)],
    )
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = booster.predict(xgb.DMatrix(data.x_eval, nthread=thread_count()))
    predict_seconds = time.perf_counter() - started
    booster.save_model(str(model_dir / MODEL_FILE))
    facts = {"model_format": "xgboost-json", "threads": thread_count()}
    return FitOutcome(np.asarray(scores, dtype="float64"), train_seconds, predict_seconds, device, facts)
