"""Per-run working directories of the training child: the server writes inputs/, the child
writes outputs/ (training/__init__.py holds the contract). Everything read back from outputs/ is
untrusted and goes through server.sandbox_io."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from server.sandbox_io import read_output_bytes, remove_tree
from tools.errors import SandboxFailed
from training.contract import BUILT_DIR, BUILT_EVAL_FILE, BUILT_TRAIN_FILE, FEATURE_TRANSFORM_FILE, MODEL_DIR, MODEL_FILES, PREDICTIONS_FILE

if TYPE_CHECKING:  # imported where predictions are read: a server starts without them (tests/server/commands/test_serve_imports.py)
    import pandas as pd
    import pyarrow.parquet as pq

MAX_PREDICTION_BYTES = 512 * 2**20
MAX_MODEL_FILE_BYTES = 1024 * 2**20
MAX_MODEL_BYTES = 2 * 2**30  # all files of a model: a child's sparse files cost it nothing, the copy every byte
PREDICTION_COLUMNS = {"__row_id__": "int64", "score": "float64"}
STAGE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}\Z")
# outputs/ is written by the fit stage, which runs no agent code: a malformed one is for an operator.
OUTPUTS_REMEDIATION = "An operator should check the run directory's logs/ and the training package; in bwrap src/features.py cannot reach outputs/."
RUN_ID = re.compile(r"^[0-9a-f]{32}\Z")
DATA_INPUTS = ("train.parquet", "eval.parquet")  # copies of dataset rows; spec.json and features.py stay
NO_FOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RunDirs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def stage_dir(self, run_id: str, stage: str) -> Path:
        """A fresh directory for one child invocation of a run."""
        if not RUN_ID.match(run_id) or not STAGE.match(stage):
            raise ValueError("run ids are 32 hex digits and stage names short slugs")
        path = self.root / run_id / stage
        if path.exists() or path.is_symlink():
            remove_tree(path)  # a child's outputs/ may nest deeper than shutil.rmtree can recurse
        (path / "inputs").mkdir(parents=True)
        return path

    def write_inputs(self, stage_dir: Path, train: pd.DataFrame, evaluation: pd.DataFrame, spec: dict, features_py: bytes) -> None:
        inputs = stage_dir / "inputs"
        train.to_parquet(inputs / "train.parquet", index=False)
        evaluation.to_parquet(inputs / "eval.parquet", index=False)
        (inputs / "spec.json").write_text(json.dumps(spec, sort_keys=True))
        (inputs / "features.py").write_bytes(features_py)

    def write_score_inputs(self, stage_dir: Path, evaluation: pd.DataFrame, spec: dict, features_py: bytes, model_files: dict[str, bytes]) -> None:
        """inputs/ of the child's score task: a trained model's files under model/ in place of training rows."""
        inputs = stage_dir / "inputs"
        evaluation.to_parquet(inputs / "eval.parquet", index=False)
        (inputs / "spec.json").write_text(json.dumps(spec, sort_keys=True))
        (inputs / "features.py").write_bytes(features_py)
        (inputs / MODEL_DIR).mkdir()
        for name, data in model_files.items():
            (inputs / MODEL_DIR / Path(name).name).write_bytes(data)

    def release_inputs(self, run_id: str) -> int:
        """Deletes the rows a run's stages were given (DATA_INPUTS) once the run has ended: they are
        copies of the dataset (gigabytes for a large one, per run and stage) and the content-addressed
        store keeps the original; a score stage's copy of the champion's model (inputs/model/); and
        built/, the features stage's frames (every row's features again).
        Logs, spec.json, features.py and outputs/ stay for the operator.
        Never follows a link a child may have planted. Returns the bytes freed."""
        run = self.root / run_id
        if not RUN_ID.match(run_id) or run.is_symlink() or not run.is_dir():
            return 0
        stages = [stage for stage in sorted(run.iterdir()) if STAGE.match(stage.name)]
        return sum(_unlink_copies(stage) + _remove_built(stage) for stage in stages)

    def read_predictions(self, stage_dir: Path) -> pd.DataFrame:
        """The model's predictions. Raises SandboxFailed when they are missing, unreadable or
        malformed, or declare another number of rows than inputs/eval.parquet holds: parquet packs
        repeated values so tightly that a few kilobytes can decode to millions of rows, so the
        declared count is checked before anything is decoded, and only the two columns used are."""
        import pyarrow.parquet as pq  # noqa: PLC0415 - see the imports above

        try:
            data = read_output_bytes(stage_dir / "outputs" / PREDICTIONS_FILE, MAX_PREDICTION_BYTES)
            predictions = pq.ParquetFile(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parse failure is the child's fault
            raise _unreadable(exc) from None
        if _declared_rows(predictions.metadata) != pq.read_metadata(stage_dir / "inputs" / "eval.parquet").num_rows:
            raise SandboxFailed("the child's predictions do not hold one row per evaluation row", "src/features.py must keep one output row per input row",
                                rule_id="sandbox.invalid_output")
        try:
            frame = predictions.read(columns=list(PREDICTION_COLUMNS)).to_pandas()
            return frame[list(PREDICTION_COLUMNS)].astype(PREDICTION_COLUMNS)
        except Exception as exc:  # noqa: BLE001 - as above
            raise _unreadable(exc) from None

    def model_files(self, stage_dir: Path) -> list[Path]:
        """Regular files of the model artifact (read through sandbox_io checks by the caller)."""
        model = stage_dir / "outputs" / MODEL_DIR
        return sorted(p for p in model.rglob("*") if p.is_file() and not p.is_symlink()) if model.is_dir() else []

    def copy_model(self, stage_dir: Path, target: Path, model_type: str) -> Path:
        """A server-owned copy of the model artifact, each file re-read with the untrusted-output
        checks. Raises SandboxFailed (sandbox.invalid_output) before copying anything when the files
        are not exactly those the `model_type` family writes (training/contract.MODEL_FILES; other
        names are not repeated: whatever wrote them chose them) or declare more than MAX_MODEL_BYTES."""
        files, base = self.model_files(stage_dir), stage_dir / "outputs" / MODEL_DIR
        if {path.relative_to(base).as_posix() for path in files} != {FEATURE_TRANSFORM_FILE, *MODEL_FILES.get(model_type, ())}:
            raise SandboxFailed(f"the model directory does not hold exactly the files the {model_type} family writes",
                                OUTPUTS_REMEDIATION, rule_id="sandbox.invalid_output")
        if sum(path.lstat().st_size for path in files) > MAX_MODEL_BYTES:
            raise SandboxFailed(f"the model's files hold more than {MAX_MODEL_BYTES // 2**30} GiB", f"Train a smaller model. {OUTPUTS_REMEDIATION}",
                                rule_id="sandbox.invalid_output")
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            destination = target / path.relative_to(base)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(read_output_bytes(path, MAX_MODEL_FILE_BYTES))
        return target


def _unlink_copies(stage: Path) -> int:
    """Unlinks DATA_INPUTS and the model copy in `stage`/inputs, opened without following links;
    returns bytes freed."""
    try:
        stage_fd = os.open(stage, NO_FOLLOW)
    except OSError:
        return 0  # not a directory (or a link): nothing of ours
    try:
        inputs = os.open("inputs", NO_FOLLOW, dir_fd=stage_fd)
    except OSError:
        return 0
    finally:
        os.close(stage_fd)
    try:
        return _unlink_files(inputs, DATA_INPUTS) + _unlink_model_copy(inputs)
    finally:
        os.close(inputs)


def _remove_built(stage: Path) -> int:
    """built/ of a stage, shaped by features.py (any depth, any modes): removed without following a
    link. Returns the bytes of the two frames it should hold (what else it held is not counted)."""
    built = stage / BUILT_DIR
    if built.is_symlink() or not built.is_dir():
        return 0
    frames = [built / name for name in (BUILT_TRAIN_FILE, BUILT_EVAL_FILE)]
    freed = sum(path.lstat().st_size for path in frames if path.is_file() and not path.is_symlink())
    try:
        remove_tree(built)
    except OSError:
        return 0
    return freed


def _unlink_model_copy(inputs: int) -> int:
    """The champion's model files a score stage was given (inputs/model/: a copy of its run's
    chained artifacts, which the tracking store keeps), then the directory unless a child left a
    directory in it."""
    try:
        model = os.open(MODEL_DIR, NO_FOLLOW, dir_fd=inputs)
    except OSError:
        return 0  # no model copy (a training stage), or a link: not followed
    try:
        freed = _unlink_files(model, [e.name for e in os.scandir(model) if not e.is_dir(follow_symlinks=False)])
    finally:
        os.close(model)
    with contextlib.suppress(OSError):
        os.rmdir(MODEL_DIR, dir_fd=inputs)
    return freed


def _unlink_files(directory: int, names: Iterable[str]) -> int:
    """Unlinks the named entries of an open directory (a link itself, never its target); bytes freed."""
    freed = 0
    for name in names:
        try:
            size = os.stat(name, dir_fd=directory, follow_symlinks=False).st_size
            os.unlink(name, dir_fd=directory)
        except FileNotFoundError:
            continue
        freed += size
    return freed


def _unreadable(exc: Exception) -> SandboxFailed:
    return SandboxFailed(f"predictions are unreadable ({type(exc).__name__})", OUTPUTS_REMEDIATION,
                         rule_id="sandbox.invalid_output")


def _declared_rows(metadata: pq.FileMetaData) -> int | None:
    """The file's row count when its footer and its row groups agree on it (a forged footer may not)."""
    groups = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    return groups if groups == metadata.num_rows else None
