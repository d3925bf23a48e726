"""The run spec (`inputs/spec.json`) and the hyperparameters of each model family.

Imports only pydantic, so the server may import this module to validate a configuration before
it launches a child. Unknown keys are errors everywhere: a typo in a hyperparameter must not be
silently ignored and then logged as if it had been used.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


# batch_size "auto": small steps suit the CPU; on CUDA a step of a small network costs about the
# same for 256 rows as for 1024 (kernel launches dominate), so the GPU default takes 4x the rows.
CPU_BATCH_SIZE = 256
CUDA_BATCH_SIZE = 1024


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class XGBoostParams(StrictModel):
    n_estimators: int = Field(200, ge=1, le=5000, description="Boosting rounds.")
    max_depth: int = Field(6, ge=1, le=16, description="Maximum tree depth.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="Shrinkage per round (eta).")
    subsample: float = Field(1.0, gt=0, le=1, description="Row fraction sampled per tree.")
    colsample_bytree: float = Field(1.0, gt=0, le=1, description="Column fraction sampled per tree.")
    min_child_weight: float = Field(1.0, ge=0, le=1e6, description="Minimum hessian sum in a leaf.")
    reg_lambda: float = Field(1.0, ge=0, le=1e6, description="L2 regularisation of leaf weights.")
    reg_alpha: float = Field(0.0, ge=0, le=1e6, description="L1 regularisation of leaf weights.")
    scale_pos_weight: float = Field(1.0, gt=0, le=1e6, description="Weight of positive rows.")
    max_bin: int = Field(256, ge=2, le=1024, description="Histogram bins per feature.")


class LogisticRegressionParams(StrictModel):
    C: float = Field(1.0, gt=0, le=1e6, description="Inverse L2 regularisation strength.")
    max_iter: int = Field(1000, ge=10, le=100_000, description="lbfgs iterations.")
    tol: float = Field(1e-4, gt=0, le=1, description="Convergence tolerance.")
    class_weight: Literal["balanced"] | None = Field(None, description="Reweight classes by frequency.")


class RandomForestParams(StrictModel):
    n_estimators: int = Field(200, ge=1, le=2000, description="Number of trees.")
    max_depth: int | None = Field(None, ge=1, le=64, description="Maximum tree depth; null: unlimited.")
    min_samples_leaf: int = Field(1, ge=1, le=100_000, description="Minimum rows in a leaf.")
    max_features: Literal["sqrt", "log2"] | Annotated[float, Field(gt=0, le=1)] = Field(
        "sqrt", description="Features considered per split: sqrt, log2 or a fraction."
    )
    class_weight: Literal["balanced", "balanced_subsample"] | None = Field(
        None, description="Reweight classes by frequency."
    )


class TorchMLPParams(StrictModel):
    hidden_sizes: tuple[Annotated[int, Field(ge=1, le=4096)], ...] = Field(
        (64, 32), min_length=1, max_length=4, description="Units of each hidden layer."
    )
    dropout: float = Field(0.0, ge=0, le=0.9, description="Dropout after each hidden layer.")
    epochs: int = Field(20, ge=1, le=1000, description="Passes over the training rows.")
    batch_size: Annotated[int, Field(ge=1, le=65_536)] | Literal["auto"] = Field(
        "auto", description=f"Rows per micro-batch; auto: {CPU_BATCH_SIZE} on CPU, {CUDA_BATCH_SIZE} on CUDA "
        "(the size used is reported with the run's hardware)."
    )
    grad_accum_steps: int = Field(
        1, ge=1, le=1024, description="Micro-batches per optimizer step (effective batch = batch_size x this)."
    )
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="Adam weight decay.")

    def batch_size_on(self, device: str) -> int:
        """Rows per micro-batch on `device` ("cpu" or "cuda"): the declared size, or auto's default."""
        if self.batch_size != "auto":
            return self.batch_size
        return CUDA_BATCH_SIZE if device == "cuda" else CPU_BATCH_SIZE

    def effective_batch_size_on(self, device: str) -> int:
        return self.batch_size_on(device) * self.grad_accum_steps


class XGBoostModel(StrictModel):
    type: Literal["xgboost"] = Field(description="Gradient-boosted trees (xgboost hist).")
    params: XGBoostParams = Field(default_factory=XGBoostParams, description="Hyperparameters.")


class LogisticRegressionModel(StrictModel):
    type: Literal["logistic_regression"] = Field(description="L2 logistic regression (lbfgs).")
    params: LogisticRegressionParams = Field(default_factory=LogisticRegressionParams, description="Hyperparameters.")


class RandomForestModel(StrictModel):
    type: Literal["random_forest"] = Field(description="scikit-learn random forest.")
    params: RandomForestParams = Field(default_factory=RandomForestParams, description="Hyperparameters.")


class TorchMLPModel(StrictModel):
    type: Literal["torch_mlp"] = Field(description="Multi-layer perceptron in torch (CUDA when available).")
    params: TorchMLPParams = Field(default_factory=TorchMLPParams, description="Hyperparameters.")


ModelSpec = Annotated[
    XGBoostModel | LogisticRegressionModel | RandomForestModel | TorchMLPModel,
    Field(discriminator="type"),
]
MODEL_TYPES = ("xgboost", "torch_mlp", "logistic_regression", "random_forest")
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]


class RunSpec(StrictModel):
    model: ModelSpec = Field(description="Model family and its hyperparameters.")
    seed: int = Field(ge=0, le=2**32 - 1, description="Seed for every random number generator.")
    feature_columns: tuple[ColumnName, ...] = Field(
        min_length=1, max_length=10_000, description="Columns of the parquet files passed to build_features."
    )
    context_columns: tuple[ColumnName, ...] = Field(
        (), max_length=16, description="Columns given to a build_features(frame, context) as `context` (the standards' time column): features may be measured from them (an account's age at application); they are never features themselves, and a column of that name is dropped from its output."
    )
    categorical_columns: tuple[ColumnName, ...] = Field(
        (), max_length=10_000, description="Columns encoded as categories even when their dtype is numeric, unless build_features changed their dtype (text parsed into numbers follows its new dtype)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when the sandbox sees a GPU (torch and xgboost), CPU otherwise; cuda without a GPU is an error."
    )
    task: Literal["fit_predict", "score"] = Field(
        "fit_predict", description="fit_predict: train on train.parquet, score eval.parquet. score: no training; the model under inputs/model/ scores eval.parquet (training/scoring.py)."
    )
    max_categories: int = Field(
        50, ge=1, le=1000, description="Most frequent training categories kept per column; the rest encode as unknown."
    )


# xgboost reports progress once per tenth of its boosting rounds.
PROGRESS_CHUNKS = 10


def boosting_chunk(rounds: int) -> int:
    """Boosting rounds per progress step."""
    return max(1, math.ceil(rounds / PROGRESS_CHUNKS))


def progress_total(model: XGBoostModel | LogisticRegressionModel | RandomForestModel | TorchMLPModel) -> int:
    """How many progress steps a child training `model` writes: epochs for torch, chunks of rounds
    for xgboost, one for scikit-learn. The server bounds the child's progress by this number."""
    if isinstance(model, TorchMLPModel):
        return model.params.epochs
    if isinstance(model, XGBoostModel):
        return math.ceil(model.params.n_estimators / boosting_chunk(model.params.n_estimators))
    return 1


def parse_spec(text: str | bytes) -> RunSpec:
    """Validate spec.json; raises pydantic.ValidationError."""
    return RunSpec.model_validate_json(text)
