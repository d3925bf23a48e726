"""The documents the child writes under outputs/, as models both sides validate.

The child builds them; the server validates what it reads back with the same models, because a
hostile features.py can write any file in built/ (result.json included) and the fit stage writes
outputs/ from built/'s data. Imports only pydantic and the standard library.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

PROGRESS_FILE = "progress.jsonl"
# The environment variable naming the child's end of its launcher's lifeline pipe (training/lifeline.py).
LIFELINE_VARIABLE = "SANDBOX_LIFELINE_FD"
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.parquet"
MODEL_DIR = "model"
FEATURE_TRANSFORM_FILE = "feature_transform.json"
# The features stage's only writable directory (<run>/built/): build_features' output, as Parquet.
BUILT_DIR = "built"
BUILT_TRAIN_FILE = "train.parquet"
BUILT_EVAL_FILE = "eval.parquet"
# The child's two processes, each in a sandbox of its own: only "features" imports features.py.
Stage = Literal["features", "fit"]
# The files each family writes under model/ besides feature_transform.json (the families and
# training/scoring.py name them from here): the server copies and logs exactly these (a file src/features.py adds would carry a name of its choosing into MLflow).
MODEL_FILES = {
    "xgboost": ("model.json",),
    "logistic_regression": ("model.json",),
    "random_forest": ("model.skops",),
    "torch_mlp": ("model.pt", "architecture.json"),
}
MAX_MESSAGE_CHARS = 300
MAX_PROGRESS_STEP = 1_000_000
Seconds = Annotated[float, Field(ge=0)]
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Where in the child a failure happened. The child reports one of these; the server words the
# message the agent reads from it (server.sandbox_vocabulary), never from the child's own text.
Phase = Literal["start", "spec", "inputs", "features_import", "build_features", "transform", "fit", "score", "outputs"]
# What a failure raised by training/ itself was about; the server holds one fixed sentence per code.
ErrorCode = Literal[
    "spec_missing", "spec_invalid", "columns_missing", "labels_invalid", "labels_single_class", "eval_labelled",
    "features_unloadable", "build_features_missing", "features_not_frame", "features_row_count",
    "features_no_columns", "features_column_names", "features_columns_missing", "features_column_type",
    "features_unstorable", "features_output_invalid", "device_unavailable", "scores_invalid", "batch_size_mismatch", "model_unreadable", "training_failed",
]
PHASES: tuple[str, ...] = get_args(Phase)
ERROR_CODES: tuple[str, ...] = get_args(ErrorCode)
REPORTED_LIBRARIES = ("numpy", "pandas", "pyarrow", "scikit-learn", "xgboost", "torch", "skops", "pydantic")


def library_versions() -> dict[str, str]:
    """Python and the installed versions of REPORTED_LIBRARIES (the child runs the server's venv)."""
    versions = {"python": platform.python_version()}
    for name in REPORTED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
# error_type values the child reports when a resource limit of the sandbox was hit.
LIMIT_ERROR_TYPES = {"MemoryError": "memory", "FileSizeLimitError": "file_size", "ProcessLimitError": "process"}


class ContractModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgressEvent(ContractModel):
    """One progress line as the child writes it. Untrusted: the server keeps only a step within the
    total it derived from the spec and allowlisted metrics, rounded (server.sandbox_vocabulary)."""

    step: int = Field(ge=0, le=MAX_PROGRESS_STEP, description="Steps done so far.")
    metrics: dict[Annotated[str, Field(max_length=64, pattern=IDENTIFIER_PATTERN)], float | None] = Field(
        default_factory=dict, max_length=16, description="e.g. train_loss of the step."
    )


class ErrorResult(ContractModel):
    """A failed run. Only error_type, phase, code and features_line reach the server's words for
    the agent, each checked against a fixed list; message is for the operator's log only."""

    status: Literal["error"] = "error"
    error_type: str = Field(max_length=100, pattern=IDENTIFIER_PATTERN, description="Exception type, or a LIMIT_ERROR_TYPES name.")
    phase: Phase = Field("start", description="Where in the child the failure happened.")
    code: ErrorCode | None = Field(None, description="What a failure raised by training/ was about.")
    features_line: int | None = Field(None, ge=1, le=MAX_PROGRESS_STEP, description="Last features.py line in the traceback.")
    message: str = Field(max_length=MAX_MESSAGE_CHARS, description="The child's own short text: operator's log only.")


class SuccessResult(ContractModel):
    status: Literal["ok"] = "ok"
    train_seconds: Seconds
    predict_seconds: Seconds
    inference_latency_ms_per_row: Seconds
    wall_seconds: Seconds = Field(0.0, description="The fit stage's time from start to result, imports included (not the features stage's).")
    device: Literal["cpu", "cuda"]
    gpu_name: str | None = Field(None, max_length=200)
    peak_gpu_memory_bytes: int | None = Field(None, ge=0, description="torch on CUDA only.")
    batch_size: int | None = Field(None, ge=1, description="torch: rows per micro-batch used (the spec's, or auto's size for the device).")
    effective_batch_size: int | None = Field(None, ge=1, description="torch: batch_size x grad_accum_steps.")
    library_versions: dict[str, str] = Field(max_length=32)
    n_features: int = Field(ge=1)
    feature_names: list[Annotated[str, Field(max_length=600)]] = Field(max_length=100_000)
    n_train_rows: int = Field(ge=0, description="0 for the score task: nothing is trained.")
    n_eval_rows: int = Field(ge=0)
    details: dict[str, Any] = Field(default_factory=dict, description="model_format, threads, family facts.")


ChildResult = Annotated[SuccessResult | ErrorResult, Field(discriminator="status")]
