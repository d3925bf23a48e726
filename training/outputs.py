"""What the child writes under outputs/: progress lines, predictions, the result document.

progress.jsonl is flushed per line so the server can stream it while training runs; result.json
and predictions.parquet are written to a temporary name and renamed, so a reader never sees a
half-written file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from training.contract import PREDICTIONS_FILE, PROGRESS_FILE, RESULT_FILE, ErrorResult, ProgressEvent, SuccessResult



class ProgressWriter:
    """Appends one JSON line per step: {"step", "metrics"}. The server words the message itself
    and knows the number of steps from the spec it wrote (training.spec.progress_total)."""

    def __init__(self, outputs: Path) -> None:
        self._path = outputs / PROGRESS_FILE

    def step(self, step: int, **metrics: float) -> None:
        event = ProgressEvent(step=step, metrics={k: float(v) for k, v in metrics.items()})
        with self._path.open("a", encoding="utf-8") as handle:
            handle.write(event.model_dump_json() + "\n")
            handle.flush()


def _replace_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def write_result(outputs: Path, result: SuccessResult | ErrorResult) -> None:
    document = result.model_dump(mode="json")
    _replace_atomically(outputs / RESULT_FILE, json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode())


def write_predictions(outputs: Path, row_ids: np.ndarray, scores: np.ndarray, name: str = PREDICTIONS_FILE) -> None:
    """One row per evaluation row, in the order of eval.parquet."""
    frame = pd.DataFrame({"__row_id__": row_ids.astype("int64"), "score": scores.astype("float64")})
    temporary = outputs / f".{name}.tmp"
    frame.to_parquet(temporary, index=False)
    temporary.replace(outputs / name)
