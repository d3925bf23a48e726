"""The child's main line: read inputs/, build and transform features, train, write outputs/.

Any failure becomes result.json {"status": "error", "error_type", "phase", "code",
"features_line", "message"} and exit status 1; see training/__init__.py for the whole contract.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from training.contract import FEATURE_TRANSFORM_FILE, MODEL_DIR, ErrorResult, Phase, SuccessResult, library_versions
from training.determinism import seed_everything
from training.errors import SpecError, TrainingError, error_code, error_message, error_type, features_line
from training.families import FitOutcome, TrainingData, fit_predict
from training.lifeline import hold_lifeline
from training.outputs import ProgressWriter, write_predictions, write_result
from training.scoring import score
from training.spec import RunSpec, parse_spec
from training.transforms import FeatureTransform, apply_build_features, kept_dtype, load_build_features, without_context

ROW_ID, LABEL = "__row_id__", "__label__"


class PhaseLog:
    """Where the child is, so a failure can say in which phase it happened."""

    def __init__(self) -> None:
        self.name: Phase = "start"

    def enter(self, name: Phase) -> None:
        self.name = name


def load_spec(path: Path) -> RunSpec:
    try:
        return parse_spec(path.read_bytes())
    except FileNotFoundError as exc:
        raise SpecError("inputs/spec.json is missing", "spec_missing") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        raise SpecError(f"invalid spec.json: {problems}") from exc


def read_frame(path: Path, required: list[str], which: str) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise SpecError(f"{which} rows lack columns {missing[:10]}", "columns_missing")
    return frame.reset_index(drop=True)


def training_labels(train: pd.DataFrame) -> np.ndarray:
    labels = train[LABEL]
    if labels.isna().any() or not set(labels.unique()) <= {0, 1}:
        raise SpecError("training labels must be 0 or 1", "labels_invalid")
    if labels.nunique() < 2:
        raise SpecError("training rows hold a single class; a classifier needs both", "labels_single_class")
    return labels.to_numpy().astype("int64")


def prepare(spec: RunSpec, inputs: Path, phase: PhaseLog | None = None) -> tuple[TrainingData, FeatureTransform, np.ndarray]:
    phase = phase or PhaseLog()
    columns = list(spec.feature_columns)
    given = [*columns, *(c for c in spec.context_columns if c not in columns)]
    phase.enter("inputs")
    train = read_frame(inputs / "train.parquet", [ROW_ID, LABEL, *given], "training")
    evaluation = read_frame(inputs / "eval.parquet", [ROW_ID, *given], "evaluation")
    if LABEL in evaluation.columns:
        raise SpecError("evaluation rows must not carry labels", "eval_labelled")
    labels = training_labels(train)
    phase.enter("features_import")
    build = load_build_features(inputs / "features.py")
    phase.enter("build_features")
    context = given[len(columns):]
    train_built = without_context(apply_build_features(build, train[columns], "training", train[context]), context, "training")
    eval_built = without_context(apply_build_features(build, evaluation[columns], "evaluation", evaluation[context]), context, "evaluation")
    phase.enter("transform")
    transform = FeatureTransform.fit(train_built, kept_dtype(spec.categorical_columns, train[columns], train_built), spec.max_categories)
    data = TrainingData(transform.transform(train_built, "training"), labels,
                        transform.transform(eval_built, "evaluation"))
    return data, transform, evaluation[ROW_ID].to_numpy()


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


def score_only(spec: RunSpec, inputs: Path, outputs: Path, phase: PhaseLog) -> SuccessResult:
    """The score task: the trained model under inputs/model/ scores eval.parquet; nothing is fitted."""
    columns = list(spec.feature_columns)
    context = [c for c in spec.context_columns if c not in columns]
    phase.enter("inputs")
    evaluation = read_frame(inputs / "eval.parquet", [ROW_ID, *columns, *context], "evaluation")
    if LABEL in evaluation.columns:
        raise SpecError("evaluation rows must not carry labels", "eval_labelled")
    transform = FeatureTransform.from_json(json.loads((inputs / MODEL_DIR / FEATURE_TRANSFORM_FILE).read_text()))
    phase.enter("features_import")
    build = load_build_features(inputs / "features.py")
    phase.enter("build_features")
    built = without_context(apply_build_features(build, evaluation[columns], "evaluation", evaluation[context]), context, "evaluation")
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
    """Train and predict one run (or, task score, score with a trained model). Baselines are never
    fitted here: this process runs features.py, which could rewrite them; the server fits its
    baselines itself."""
    phase = phase or PhaseLog()
    inputs, outputs = run_dir / "inputs", run_dir / "outputs"
    phase.enter("spec")
    spec = load_spec(inputs / "spec.json")
    seed_everything(spec.seed)
    if spec.task == "score":
        return score_only(spec, inputs, outputs, phase)
    data, transform, row_ids = prepare(spec, inputs, phase)
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
    parser = argparse.ArgumentParser(prog="python -m training", description="Train and predict one run.")
    parser.add_argument("--run-dir", type=Path, required=True, help="Directory holding inputs/ and outputs/.")
    run_dir = parser.parse_args(argv).run_dir
    hold_lifeline()  # before features.py is imported: a child whose launcher died ends at once
    (run_dir / "outputs").mkdir(exist_ok=True)
    started, phase = time.perf_counter(), PhaseLog()
    try:
        result = run(run_dir, phase)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure must end as a result document
        write_result(run_dir / "outputs", error_result(exc, phase.name, (run_dir / "inputs" / "features.py").resolve()))
        return 1
    write_result(run_dir / "outputs", result.model_copy(update={"wall_seconds": time.perf_counter() - started}))
    return 0
