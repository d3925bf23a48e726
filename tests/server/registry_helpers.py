"""Runs with a model artifact and registered versions, made directly in a real MLflow store (the
registry and rollback tests need versions to move aliases between, not trained models)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from server.registry import ModelRegistry

MODEL = "demo-bank-credit-default"


def model_run(tracking: Any, experiment: str) -> str:
    """A FINISHED run with a model/ artifact; returns its id."""
    run_id = tracking.start_run(experiment, {"client_name": "demo-bank"})
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "weights.json"
        weights.write_text('{"coef": [0.5]}')
        tracking.log_artifact_file(run_id, weights, "model")
    tracking.end_run(run_id, "FINISHED")
    return run_id


def promoted(registry: ModelRegistry, tracking: Any, experiment: str, alias: str, count: int, model: str = MODEL) -> list[tuple[str, str]]:
    """`count` runs registered and pointed at by `alias` in turn: [(run id, version), ...]."""
    made = []
    for _ in range(count):
        run_id = model_run(tracking, experiment)
        version = registry.register(model, run_id, tracking.get_run(run_id)["artifact_uri"], {})
        registry.point(model, alias, version, {"run_id": run_id, "by": "alice", "at": "2026-01-01T00:00:00Z"})
        made.append((run_id, version))
    return made
