"""A real sqlite MLflow store in a test's tmp dir, artifacts kept beside it (never ./mlruns)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def sqlite_uri(store: Path) -> str:
    return f"sqlite:///{store / 'mlflow.db'}"


def client_with_experiment(store: Path, experiment: str) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=sqlite_uri(store))
    client.create_experiment(experiment, artifact_location=(store / "artifacts").as_uri())
    return client
