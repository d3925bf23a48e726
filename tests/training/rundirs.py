"""Builds tiny run directories (inputs/ per the training/ contract) for child and sandbox tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["income", "age", "region", "segment"]
IDENTITY_FEATURES = "def build_features(frame):\n    return frame.copy()\n"
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 20, "max_depth": 3},
    "torch_mlp": {"epochs": 4, "batch_size": 16, "grad_accum_steps": 2, "hidden_sizes": [16]},
    "logistic_regression": {},
    "random_forest": {"n_estimators": 20},
}


def synthetic_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """Numbers with missing values, string categories with missing values, a label tied to both."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "income": rng.normal(50.0, 12.0, rows),
        "age": rng.integers(18, 80, rows).astype("float64"),
        "region": rng.choice(np.array(["north", "south", "east", None], dtype=object), rows),
        "segment": rng.choice(np.array(["retail", "sme"], dtype=object), rows),
    })
    frame.loc[rng.random(rows) < 0.1, "income"] = np.nan
    signal = frame["income"].fillna(50.0) / 12 + (frame["region"] == "north") * 1.5 + rng.normal(0, 1, rows)
    frame["__row_id__"] = np.arange(rows, dtype="int64") * 3 + 11
    frame["__label__"] = (signal > signal.median()).astype("int64")
    return frame


def write_run_dir(
    run_dir: Path, model_type: str = "logistic_regression", *, rows: int = 200, seed: int = 1,
    features_source: str = IDENTITY_FEATURES, params: dict[str, Any] | None = None, device: str = "cpu",
) -> Path:
    """inputs/ with train rows (labelled), eval rows (label dropped), spec.json and features.py."""
    inputs = run_dir / "inputs"
    inputs.mkdir(parents=True)
    frame = synthetic_frame(rows)
    cut = int(rows * 0.75)
    frame.iloc[:cut].to_parquet(inputs / "train.parquet", index=False)
    frame.iloc[cut:].drop(columns="__label__").to_parquet(inputs / "eval.parquet", index=False)
    (inputs / "features.py").write_text(features_source)
    spec = {"model": {"type": model_type, "params": FAST_PARAMS[model_type] if params is None else params},
            "seed": seed, "feature_columns": FEATURES, "categorical_columns": ["segment"], "device": device,
            "task": "fit_predict"}
    (inputs / "spec.json").write_text(json.dumps(spec))
    return run_dir


def eval_row_ids(run_dir: Path) -> list[int]:
    return pd.read_parquet(run_dir / "inputs" / "eval.parquet")["__row_id__"].tolist()


def write_score_dir(score_dir: Path, trained: Path, evaluation: pd.DataFrame | None = None) -> Path:
    """inputs/ for the score task from a trained run directory: its spec (task score), its
    features.py and model/, and its evaluation rows (or `evaluation`)."""
    inputs = score_dir / "inputs"
    inputs.mkdir(parents=True)
    spec = json.loads((trained / "inputs" / "spec.json").read_text())
    (inputs / "spec.json").write_text(json.dumps({**spec, "task": "score"}))
    (inputs / "features.py").write_bytes((trained / "inputs" / "features.py").read_bytes())
    rows = pd.read_parquet(trained / "inputs" / "eval.parquet") if evaluation is None else evaluation
    rows.to_parquet(inputs / "eval.parquet", index=False)
    (inputs / "model").mkdir()
    for path in sorted((trained / "outputs" / "model").iterdir()):
        (inputs / "model" / path.name).write_bytes(path.read_bytes())
    return score_dir


def run_stages(run_dir: Path) -> int:
    """Both stages of the child in this process, as the launcher runs them in two sandboxes: the
    features stage, then (when it succeeded) the fit stage. Returns the exit status of the last."""
    from training.runner import main  # noqa: PLC0415 - training imports pandas/torch lazily for tests that need it

    status = main(["--run-dir", str(run_dir), "--stage", "features"])
    return status or main(["--run-dir", str(run_dir), "--stage", "fit"])


def result_document(run_dir: Path) -> dict[str, Any]:
    """result.json of the stage the run ended in: outputs/, or built/ when the features stage failed."""
    written = run_dir / "outputs" / "result.json"
    return json.loads((written if written.exists() else run_dir / "built" / "result.json").read_text())


def prepared(run_dir: Path) -> Any:
    """training.runner.prepare's (data, transform, row ids) after the features stage wrote built/."""
    from training.runner import load_spec, main, prepare  # noqa: PLC0415

    assert main(["--run-dir", str(run_dir), "--stage", "features"]) == 0
    return prepare(load_spec(run_dir / "inputs" / "spec.json"), run_dir / "inputs", run_dir / "built")
