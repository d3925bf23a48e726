"""Dispatch to the code of each model family, importing heavy libraries only when used."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.outputs import ProgressWriter
from training.spec import RunSpec


@dataclass(frozen=True)
class TrainingData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray


@dataclass
class FitOutcome:
    """Scores for the evaluation rows (probability of the positive class) and run facts."""

    scores: np.ndarray
    train_seconds: float
    predict_seconds: float
    device: str = "cpu"
    facts: dict[str, Any] = field(default_factory=dict)


def fit_predict(spec: RunSpec, data: TrainingData, progress: ProgressWriter, model_dir: Path) -> FitOutcome:
    family = spec.model.type
    if family == "torch_mlp":
        from training import torch_mlp

        return torch_mlp.fit_predict(spec, data, progress, model_dir)
    if family == "xgboost":
        from training import boosting

        return boosting.fit_predict(spec, data, progress, model_dir)
    from training import sklearn_models

    return sklearn_models.fit_predict(spec, data, progress, model_dir)
