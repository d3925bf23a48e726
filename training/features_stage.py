"""The features stage, `python -m training --run-dir DIR --stage features`: the only process that
imports the workspace's features.py.

It runs build_features on training and evaluation rows separately (evaluation rows only for the
score task) and writes each output to built/ as Parquet. The fit stage (training/runner.py) runs
afterwards in a sandbox of its own, without features.py, and reads built/ as data: nothing this
process does reaches the code that trains, writes the model files or predicts.
"""

from __future__ import annotations

from pathlib import Path

from training.contract import BUILT_DIR
from training.determinism import seed_everything
from training.errors import PhaseLog
from training.inputs import given_columns, load_spec, read_frame, write_built
from training.transforms import apply_build_features, load_build_features


def build_stage(run_dir: Path, phase: PhaseLog | None = None) -> None:
    """Write built/train.parquet (fit_predict only) and built/eval.parquet from features.py."""
    phase = phase or PhaseLog()
    inputs = run_dir / "inputs"
    phase.enter("spec")
    spec = load_spec(inputs / "spec.json")
    seed_everything(spec.seed)  # build_features may draw random numbers: the same seed, the same features
    columns, context = given_columns(spec)
    phase.enter("inputs")
    names = {"evaluation": "eval.parquet"} if spec.task == "score" else {"training": "train.parquet", "evaluation": "eval.parquet"}
    frames = {which: read_frame(inputs / name, [*columns, *context], which) for which, name in names.items()}
    phase.enter("features_import")
    build = load_build_features(inputs / "features.py")
    phase.enter("build_features")
    (run_dir / BUILT_DIR).mkdir(exist_ok=True)
    for which, frame in frames.items():
        write_built(run_dir / BUILT_DIR, which, apply_build_features(build, frame[columns], which, frame[context]))
