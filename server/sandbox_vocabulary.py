"""The only words about a training child that reach the agent, MLflow and the audit chain:
progress messages and failure text, built here from fixed vocabularies and the spec the server
wrote, never from the child's text.

The child controls what it writes (features.py all of built/, including the features stage's
failure report; the fit stage outputs/, from built/'s data), so whatever it reports is a channel
out of the sandbox. What it can still choose is bounded here: a progress step
within the total the spec implies, strictly increasing; at most MAX_PROGRESS_METRICS allowlisted
metrics rounded to METRIC_DIGITS significant digits; an error type from ERROR_TYPES, a phase and a
code from the contract's fixed lists, and a features.py line within the file. The child's own text
goes to the run directory's operator log (server.sandbox_io.write_operator_log) only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from training.contract import LIMIT_ERROR_TYPES, ErrorResult, ProgressEvent
from training.spec import RunSpec, boosting_chunk, parse_spec, progress_total

PROGRESS_METRICS = ("train_loss",)
MAX_PROGRESS_METRICS = len(PROGRESS_METRICS)
METRIC_DIGITS = 4
OTHER_ERROR = "an exception of another type"
# Exception types named to the agent as they are; any other name (a class features.py defined,
# say `Row_17_alice`) is reported as OTHER_ERROR.
ERROR_TYPES = frozenset({
    "TrainingError", "SpecError", "FeatureError", "DeviceError", *LIMIT_ERROR_TYPES,
    "ArithmeticError", "AssertionError", "AttributeError", "ConnectionError", "ConnectionRefusedError",
    "EOFError", "FileNotFoundError", "FloatingPointError", "ImportError", "IndexError", "KeyError",
    "LookupError", "ModuleNotFoundError", "NameError", "NotImplementedError", "OSError", "OverflowError",
    "PermissionError", "RecursionError", "RuntimeError", "StopIteration", "SystemExit", "TimeoutError",
    "TypeError", "UnboundLocalError", "UnicodeError", "UnicodeDecodeError", "UnicodeEncodeError",
    "ValueError", "ZeroDivisionError", "XGBoostError",
})
PHASE_TEXT = {
    "start": "starting", "spec": "reading its spec", "inputs": "reading its input rows",
    "features_import": "importing src/features.py", "build_features": "running build_features",
    "transform": "encoding the built features", "fit": "training the model", "score": "scoring with a trained model", "outputs": "writing its outputs",
}
CODE_TEXT = {
    "spec_missing": "the run spec is missing",
    "spec_invalid": "the run spec is invalid",
    "columns_missing": "the input rows lack columns the spec names",
    "labels_invalid": "training labels are not all 0 or 1",
    "labels_single_class": "the training rows hold a single class",
    "eval_labelled": "evaluation rows carried labels",
    "features_unloadable": "src/features.py could not be loaded as a module",
    "build_features_missing": "src/features.py does not define build_features(frame)",
    "features_not_frame": "build_features did not return a pandas DataFrame",
    "features_row_count": "build_features returned a different number of rows than it was given",
    "features_no_columns": "build_features returned no columns",
    "features_column_names": "build_features must return unique string column names",
    "features_columns_missing": "build_features returned different columns for evaluation rows than for training rows",
    "features_column_type": "a column built by build_features is neither numeric nor categorical",
    "features_unstorable": "build_features returned a column Parquet cannot store (mixed types in one column?)",
    "features_output_invalid": "the features stage left no readable built features",
    "device_unavailable": "the requested device is not usable for this model family in the sandbox",
    "scores_invalid": "the model's scores were not probabilities, one per evaluation row",
    "batch_size_mismatch": "an optimizer step did not see the effective batch size",
    "model_unreadable": "the trained model's files could not be read as its family's format",
    "training_failed": "training failed",
}


@dataclass(frozen=True)
class ProgressPlan:
    """What progress a child of this spec may report: `total` steps, worded per family."""

    family: str
    total: int
    rounds: int = 0

    @classmethod
    def from_spec(cls, spec: RunSpec) -> ProgressPlan:
        rounds = spec.model.params.n_estimators if spec.model.type == "xgboost" else 0
        return cls(spec.model.type, progress_total(spec.model), rounds)

    def message(self, step: int) -> str:
        if self.family == "torch_mlp":
            return f"epoch {step}/{self.total}"
        if self.family == "xgboost":
            return f"round {min(step * boosting_chunk(self.rounds), self.rounds)}/{self.rounds}"
        return f"{self.family} fitted"


def read_spec(path: Path) -> RunSpec | None:
    """The spec the server wrote into inputs/; None when it is unreadable or invalid."""
    try:
        return parse_spec(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None


def plan_for(spec: RunSpec | None) -> ProgressPlan | None:
    return ProgressPlan.from_spec(spec) if spec is not None else None


@dataclass(frozen=True)
class ProgressStep:
    """One progress report as the server words it."""

    step: int
    total: int
    message: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return self.step / self.total


def significant(value: float, digits: int = METRIC_DIGITS) -> float:
    """value rounded to `digits` significant digits."""
    return float(f"{value:.{digits - 1}e}")


def clamp_metrics(metrics: Mapping[str, float | None]) -> dict[str, float]:
    """Allowlisted, finite metrics only, rounded: a metric value carries a few digits, not a row."""
    kept = {name: metrics[name] for name in PROGRESS_METRICS if metrics.get(name) is not None}
    finite = {name: significant(value) for name, value in kept.items() if math.isfinite(value)}
    return dict(list(finite.items())[:MAX_PROGRESS_METRICS])


class ProgressGate:
    """Admits the child's progress events as server-worded steps: each step strictly after the
    last and at most the plan's total (so at most `total` reports per run); the rest are counted."""

    def __init__(self, plan: ProgressPlan | None) -> None:
        self._plan, self._last = plan, 0
        self.rejected = 0

    def admit(self, event: ProgressEvent) -> ProgressStep | None:
        plan = self._plan
        if plan is None or not self._last < event.step <= plan.total:
            self.rejected += 1
            return None
        self._last = event.step
        return ProgressStep(event.step, plan.total, plan.message(event.step), clamp_metrics(event.metrics))


def error_kind(error_type: str) -> str:
    return error_type if error_type in ERROR_TYPES else OTHER_ERROR


def child_error_text(result: ErrorResult, features_lines: int) -> str:
    """What the agent reads about a failed child: server-written, from checked fields only."""
    text = f"the training child failed while {PHASE_TEXT[result.phase]}: {error_kind(result.error_type)}"
    if result.code is not None:
        text += f" ({CODE_TEXT[result.code]})"
    if result.features_line is not None and result.features_line <= features_lines:
        text += f" at src/features.py line {result.features_line}"
    return text
