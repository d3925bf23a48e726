"""The child's main line, `python -m training --run-dir DIR --stage features|fit`: the features stage
(training/features_stage.py) writes built/, the fit stage reads inputs/ and built/, transforms,
trains and writes outputs/. The server runs the two in separate sandboxes, one after the other.

Any failure becomes result.json {"status": "error", "error_type", "phase", "code",
"features_line", "message"} and exit status 1; see training/__init__.py for the whole contract.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd

from training.contract import BUILT_DIR, FEATURE_TRANSFORM_FILE, MODEL_DIR, ErrorResult, Phase, Stage, SuccessResult, library_versions
from training.determinism import seed_everything
from training.errors import PhaseLog, SpecError, TrainingError, error_code, error_message, error_type, features_line
from training.families import FitOutcome, TrainingData, fit_predict
from training.features_stage import build_stage
from training.inputs import LABEL, ROW_ID, given_columns, load_spec, read_built, read_frame
from training.lifeline import hold_lifeline
from training.outputs import ProgressWriter, write_predictions, write_result
from training.scoring import score
from training.spec import RunSpec
from training.transforms import FeatureTransform, kept_dtype, without_context

def training_labels(train: pd.DataFrame) -> np.ndarray:
    labels = train[LABEL]
    if labels.isna().any() or not set(labels.unique()) <= {0, 1}:
        raise SpecError("training labels must be 0 or 1", "labels_invalid")
    if labels.nunique() < 2:
        raise SpecError("training rows hold a single class; a classifier needs both", "labels_single_class")
    return labels.to_numpy().astype("int64")


def prepare(spec: RunSpec, inputs: Path, built: Path, phase: PhaseLog | None = None) -> tuple[TrainingData, FeatureTransform, np.ndarray]:
    """The fit stage's data: labels and row ids from inputs/, features from the features stage's built/."""
    phase = phase or PhaseLog()
    columns, context = given_columns(spec)
    phase.enter("inputs")
    train = read_frame(inputs / "train.parquet", [ROW_ID, LABEL, *columns, *context], "training")
    evaluation = read_evaluation(inputs, [*columns, *context])
    labels = training_labels(train)
    phase.enter("build_features")
    train_built = without_context(read_built(built, "training", len(train)), context, "training")
    eval_built = without_context(read_built(built, "evaluation", len(evaluation)), context, "evaluation")
    phase.enter("transform")
    transform = FeatureTransform.fit(train_built, kept_dtype(spec.categorical_columns, train[columns], train_built), spec.max_categories)
    data = TrainingData(transform.transform(train_built, "training"), labels,
                        transform.transform(eval_built, "evaluation"))
    return data, transform, evaluation[ROW_ID].to_numpy()


def read_evaluation(inputs: Path, given: list[str]) -> pd.DataFrame:
    evaluation = read_frame(inputs / "eval.parquet", [ROW_ID, *given], "evaluation")
    if LABEL in evaluation.columns:
        raise SpecError("evaluation rows must not carry labels", "eval_labelled")
    return evaluation


def check_scores(scores: np.ndarray, n_rows: int) -> None:
    if scores.shape != (n_rows,) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise TrainingError("the model produced scores outside [0, 1] or not one per evaluation row", "scores_invalid")


def success_result(outcome: FitOutcome, transform: FeatureTransform, n_rows: tuple[int, int]) -> SuccessResult:
    facts = dict(outcome.facts)
    return SuccessResult(
        train_seconds=outcome.train_seconds, predict_seconds=outcome.predict_seconds,
        inference_latency_ms_per_row=1000 * outcome.predict_seconds / max(n_rows[1], 1),
        device=outcome.device, gpu_name=facts.pop("gpu_name", None),
        peak_gpu_memory_bytes=facts.pop("peak_gpu_memory_bytes", None),
        batch_size=facts.pop("batch_size", None), effective_batch_size=facts.pop("effective_batch_size", None),
        library_versions=library_versions(), n_features=len(transform.feature_names),
        feature_names=transform.feature_names, n_train_rows=n_rows[0], n_eval_rows=n_rows[1], details=facts,
    )


def score_only(spec: RunSpec, run_dir: Path, phase: PhaseLog) -> SuccessResult:
    """The score task: the trained model under inputs/model/ scores the built evaluation rows; nothing is fitted."""
    inputs, outputs = run_dir / "inputs", run_dir / "outputs"
    columns, context = given_columns(spec)
    phase.enter("inputs")
    evaluation = read_evaluation(inputs, [*columns, *context])
    transform = FeatureTransform.from_json(json.loads((inputs / MODEL_DIR / FEATURE_TRANSFORM_FILE).read_text()))
    phase.enter("build_features")
    built = without_context(read_built(run_dir / BUILT_DIR, "evaluation", len(evaluation)), context, "evaluation")
    phase.enter("transform")
    x = transform.transform(built, "evaluation")
    phase.enter("score")
    started = time.perf_counter()
    scores = score(spec, inputs / MODEL_DIR, x)
    check_scores(scores, len(evaluation))
    predict_seconds = time.perf_counter() - started
    phase.enter("outputs")
    write_predictions(outputs, evaluation[ROW_ID].to_numpy(), scores)
    return success_result(FitOutcome(scores, 0.0, predict_seconds, "cpu", {"task": "score"}), transform, (0, len(evaluation)))


def run(run_dir: Path, phase: PhaseLog | None = None) -> SuccessResult:
    """The fit stage: train and predict one run (or, task score, score with a trained model) on the
    features stage's built/ frames. This process never imports features.py (training/features_stage.py
    does, in a sandbox of its own), so the model files and predictions are written by code that
    features.py cannot touch. Baselines are never fitted here: the server fits its own."""
    phase = phase or PhaseLog()
    inputs, outputs = run_dir / "inputs", run_dir / "outputs"
    phase.enter("spec")
    spec = load_spec(inputs / "spec.json")
    seed_everything(spec.seed)
    if spec.task == "score":
        return score_only(spec, run_dir, phase)
    data, transform, row_ids = prepare(spec, inputs, run_dir / BUILT_DIR, phase)
    phase.enter("fit")
    model_dir = outputs / MODEL_DIR
    model_dir.mkdir(exist_ok=True)
    (model_dir / FEATURE_TRANSFORM_FILE).write_text(json.dumps(transform.to_json(), indent=2, sort_keys=True))
    outcome = fit_predict(spec, data, ProgressWriter(outputs), model_dir)
    check_scores(outcome.scores, len(row_ids))
    phase.enter("outputs")
    write_predictions(outputs, row_ids, outcome.scores)
    return success_result(outcome, transform, (len(data.x_train), len(row_ids)))


def error_result(exc: BaseException, phase: Phase, features: Path) -> ErrorResult:
    return ErrorResult(error_type=error_type(exc), phase=phase, code=error_code(exc),
                       features_line=features_line(exc, features), message=error_message(exc, features))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description="One stage of one run.")
    parser.add_argument("--run-dir", type=Path, required=True, help="Directory holding inputs/, built/ and outputs/.")
    parser.add_argument("--stage", choices=get_args(Stage), required=True,
                        help="features: run features.py into built/; fit: train and predict from built/ into outputs/.")
    args = parser.parse_args(argv)
    hold_lifeline()  # before features.py is imported: a child whose launcher died ends at once
    return run_stage(args.run_dir, args.stage)


def run_stage(run_dir: Path, stage: Stage) -> int:
    """Run one stage; any failure ends as an ErrorResult in the stage's writable directory and status 1.
    The features stage writes nothing else there on success: its output is built/ itself."""
    written = run_dir / (BUILT_DIR if stage == "features" else "outputs")
    written.mkdir(exist_ok=True)
    started, phase = time.perf_counter(), PhaseLog()
    try:
        result = build_stage(run_dir, phase) if stage == "features" else run(run_dir, phase)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure must end as a result document
        write_result(written, error_result(exc, phase.name, (run_dir / "inputs" / "features.py").resolve()))
        return 1
    if result is not None:
        write_result(written, result.model_copy(update={"wall_seconds": time.perf_counter() - started}))
    return 0
