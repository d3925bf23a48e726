"""logistic_regression and random_forest (scikit-learn). Never pickled: the artifact comes from
untrusted code and whoever loads a pickle runs it. A logistic regression is saved as its
coefficients in JSON (readable by anyone); a forest with skops, imported only then because
importing skops walks every scikit-learn estimator (about two seconds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from training.contract import MODEL_FILES
from training.determinism import thread_count
from training.errors import DeviceError
from training.families import FitOutcome, TrainingData
from training.outputs import ProgressWriter
from training.spec import LogisticRegressionModel, RandomForestModel, RunSpec

FOREST_FILE, LOGISTIC_FILE = MODEL_FILES["random_forest"][0], MODEL_FILES["logistic_regression"][0]


def build_estimator(model: LogisticRegressionModel | RandomForestModel, seed: int) -> ClassifierMixin:
    params = model.params.model_dump()
    if model.type == "logistic_regression":
        return LogisticRegression(solver="lbfgs", random_state=seed, **params)
    return RandomForestClassifier(random_state=seed, n_jobs=thread_count(), **params)


def fit_predict(spec: RunSpec, data: TrainingData, progress: ProgressWriter, model_dir: Path) -> FitOutcome:
    if spec.device == "cuda":
        raise DeviceError(f"{spec.model.type} runs on CPU only; set device to auto or cpu")
    estimator = build_estimator(spec.model, spec.seed)
    started = time.perf_counter()
    estimator.fit(data.x_train, data.y_train)
    train_seconds = time.perf_counter() - started
    train_loss = log_loss(data.y_train, estimator.predict_proba(data.x_train)[:, 1], labels=[0, 1])
    progress.step(1, train_loss=train_loss)
    started = time.perf_counter()
    scores = estimator.predict_proba(data.x_eval)[:, 1]
    predict_seconds = time.perf_counter() - started
    facts = {"model_format": save_estimator(estimator, model_dir), "threads": thread_count()}
    return FitOutcome(np.asarray(scores, dtype="float64"), train_seconds, predict_seconds, "cpu", facts)


def save_estimator(estimator: ClassifierMixin, model_dir: Path) -> str:
    """Write the fitted estimator under model_dir; returns the format name reported in result.json."""
    if isinstance(estimator, LogisticRegression):
        document = {"coef": estimator.coef_[0].tolist(), "intercept": float(estimator.intercept_[0]),
                    "score": "sigmoid(coef . x + intercept) on feature_transform.json features"}
        (model_dir / LOGISTIC_FILE).write_text(json.dumps(document, indent=2))
        return "logistic-regression-json"
    import skops.io

    skops.io.dump(estimator, model_dir / FOREST_FILE)
    return "skops"
