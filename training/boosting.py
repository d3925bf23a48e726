"""xgboost (hist), trained with the native API so progress can be reported per chunk of rounds."""

from __future__ import annotations

import math
import sys
import time
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

from training.determinism import thread_count
from training.errors import DeviceError
from training.families import FitOutcome, TrainingData
from training.outputs import ProgressWriter
from training.spec import RunSpec, XGBoostParams, boosting_chunk

MODEL_FILE = "model.json"
NVIDIA_CONTROL_DEVICE = Path("/dev/nvidiactl")


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


def select_device(requested: str) -> str:
    """CUDA only when asked for explicitly: CPU and GPU histograms give different trees."""
    if requested != "cuda":
        return "cpu"
    if not NVIDIA_CONTROL_DEVICE.exists():
        raise DeviceError("device cuda requested but no NVIDIA device is visible in the sandbox")
    return "cuda"


def fit_predict(spec: RunSpec, data: TrainingData, progress: ProgressWriter, model_dir: Path) -> FitOutcome:
    params = spec.model.params
    device = select_device(spec.device)
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
