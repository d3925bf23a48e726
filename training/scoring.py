"""The child's `score` task: a trained model's artifact scores evaluation rows, nothing is fitted.

The server uses it to score the champion's model on a candidate's test rows, so promotion compares
the two on the same rows even when the candidate was trained on a newer data version. Inputs are
the champion's: its spec (model family and hyperparameters), its features.py at its commit, and its
model/ directory (feature_transform.json and the family's files) under inputs/model/. Every format
is read without running code: JSON, a torch state dict with weights_only, skops with one trusted
type. The scores equal those the model gave its own evaluation rows when it was trained on the
same rows (tested per family).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.contract import MODEL_FILES
from training.errors import SpecError
from training.spec import RunSpec

LOGISTIC_FILE, FOREST_FILE, XGBOOST_FILE = MODEL_FILES["logistic_regression"][0], MODEL_FILES["random_forest"][0], MODEL_FILES["xgboost"][0]
TORCH_FILE, TORCH_ARCHITECTURE = MODEL_FILES["torch_mlp"]
FOREST_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]  # what a RandomForestClassifier's skops file holds


def score(spec: RunSpec, model_dir: Path, x: np.ndarray) -> np.ndarray:
    """P(label = 1) of each row of `x` (transformed features) from the model under `model_dir`."""
    family = spec.model.type
    loaders = {"logistic_regression": _logistic, "random_forest": _forest, "xgboost": _xgboost, "torch_mlp": _torch_mlp}
    try:
        scores = loaders[family](spec, model_dir, x)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"the {family} model artifact cannot be read ({type(exc).__name__})", "model_unreadable") from exc
    return np.asarray(scores, dtype="float64")


def _logistic(spec: RunSpec, model_dir: Path, x: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - only the family used is imported

    document = json.loads((model_dir / LOGISTIC_FILE).read_text())
    estimator = LogisticRegression()
    # The dtype the model was fitted in (the transform's float32), so scores are the fitted model's own.
    estimator.coef_ = np.asarray([document["coef"]], dtype=x.dtype)
    estimator.intercept_ = np.asarray([document["intercept"]], dtype=x.dtype)
    estimator.classes_ = np.array([0, 1])
    _check_width(estimator.coef_.shape[1], x)
    return estimator.predict_proba(x)[:, 1]


def _forest(spec: RunSpec, model_dir: Path, x: np.ndarray) -> np.ndarray:
    import skops.io  # noqa: PLC0415 - slow import, forests only
    from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415

    from training.determinism import thread_count  # noqa: PLC0415

    estimator = skops.io.load(model_dir / FOREST_FILE, trusted=FOREST_TRUSTED_TYPES)
    if not isinstance(estimator, RandomForestClassifier):
        raise TypeError("model.skops does not hold a random forest")
    _check_width(estimator.n_features_in_, x)
    estimator.n_jobs = thread_count()
    return estimator.predict_proba(x)[:, 1]


def _xgboost(spec: RunSpec, model_dir: Path, x: np.ndarray) -> np.ndarray:
    import xgboost as xgb  # noqa: PLC0415

    from training.determinism import thread_count  # noqa: PLC0415

    booster = xgb.Booster(params={"nthread": thread_count(), "device": "cpu"}, model_file=str(model_dir / XGBOOST_FILE))
    _check_width(booster.num_features(), x)
    return booster.predict(xgb.DMatrix(x, nthread=thread_count()))


def _torch_mlp(spec: RunSpec, model_dir: Path, x: np.ndarray) -> np.ndarray:
    import torch  # noqa: PLC0415

    from training.torch_mlp import build_network, predict  # noqa: PLC0415

    architecture: dict[str, Any] = json.loads((model_dir / TORCH_ARCHITECTURE).read_text())
    _check_width(int(architecture["n_features"]), x)
    network = build_network(x.shape[1], spec.model.params)
    network.load_state_dict(torch.load(model_dir / TORCH_FILE, map_location="cpu", weights_only=True), strict=True)
    return predict(network, torch.from_numpy(x))


def _check_width(expected: int, x: np.ndarray) -> None:
    if expected != x.shape[1]:
        raise ValueError(f"the model takes {expected} features, the transform gives {x.shape[1]}")
