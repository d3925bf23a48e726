"""The documents the child writes under outputs/, as models both sides validate.

The child builds them; the server validates what it reads back with the same models, because a
hostile features.py can overwrite any file in outputs/. Imports only pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROGRESS_FILE = "progress.jsonl"
RESULT_FILE = "result.json"
PREDICTIONS_FILE = "predictions.parquet"
BASELINE_PREDICTIONS_FILE = "baseline_predictions.parquet"
BASELINE_DIR = "baseline"
MODEL_DIR = "model"
FEATURE_TRANSFORM_FILE = "feature_transform.json"
MAX_MESSAGE_CHARS = 300
Seconds = Annotated[float, Field(ge=0)]
# Progress and error text reach the agent while the run is going: fixed shapes keep that channel
# from carrying arbitrary text (rows of training data) out of the sandbox.
PROGRESS_MESSAGE_PATTERN = r"^[a-z_]+ (fitted|\d+/\d+)$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# error_type values the child reports when a resource limit of the sandbox was hit.
LIMIT_ERROR_TYPES = {"MemoryError": "memory", "FileSizeLimitError": "file_size", "ProcessLimitError": "process"}


class ContractModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgressEvent(ContractModel):
    step: int = Field(ge=0, description="Steps done so far.")
    total: int = Field(ge=0, description="Steps of this run (epochs, boosting chunks, 1 for sklearn).")
    message: str = Field(
        max_length=80, pattern=PROGRESS_MESSAGE_PATTERN, description='"epoch 3/20", "round 40/200", "random_forest fitted".'
    )
    metrics: dict[Annotated[str, Field(max_length=64, pattern=IDENTIFIER_PATTERN)], float | None] = Field(
        default_factory=dict, max_length=16, description="e.g. train_loss of the step."
    )


class ErrorResult(ContractModel):
    status: Literal["error"] = "error"
    error_type: str = Field(max_length=100, pattern=IDENTIFIER_PATTERN, description="Exception type, or a LIMIT_ERROR_TYPES name.")
    message: str = Field(max_length=MAX_MESSAGE_CHARS, description="Short, data-free description.")


class SuccessResult(ContractModel):
    status: Literal["ok"] = "ok"
    train_seconds: Seconds
    predict_seconds: Seconds
    inference_latency_ms_per_row: Seconds
    wall_seconds: Seconds = Field(0.0, description="Child time from start to result, imports included.")
    device: Literal["cpu", "cuda"]
    gpu_name: str | None = Field(None, max_length=200)
    peak_gpu_memory_bytes: int | None = Field(None, ge=0, description="torch on CUDA only.")
    effective_batch_size: int | None = Field(None, ge=1, description="torch: batch_size x grad_accum_steps.")
    library_versions: dict[str, str] = Field(max_length=32)
    n_features: int = Field(ge=1)
    feature_names: list[Annotated[str, Field(max_length=600)]] = Field(max_length=100_000)
    n_train_rows: int = Field(ge=1)
    n_eval_rows: int = Field(ge=0)
    details: dict[str, Any] = Field(default_factory=dict, description="model_format, threads, family facts.")


ChildResult = Annotated[SuccessResult | ErrorResult, Field(discriminator="status")]
