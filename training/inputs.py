"""Reading the server-written inputs/ and the features stage's built/ frames, shared by both stages.

built/ is written by the features stage, which runs the workspace's features.py: the fit stage
reads it as data only (Parquet, never a pickle) and checks it as it would check build_features'
own return value.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pandas as pd
import pyarrow
from pydantic import ValidationError

from training.contract import BUILT_EVAL_FILE, BUILT_TRAIN_FILE
from training.errors import FeatureError, SpecError
from training.spec import RunSpec, parse_spec
from training.transforms import check_built

ROW_ID, LABEL = "__row_id__", "__label__"
BUILT_FILES = {"training": BUILT_TRAIN_FILE, "evaluation": BUILT_EVAL_FILE}


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


def given_columns(spec: RunSpec) -> tuple[list[str], list[str]]:
    """(feature columns, context columns that are not also feature columns)."""
    columns = list(spec.feature_columns)
    return columns, [c for c in spec.context_columns if c not in columns]


def write_built(built: Path, which: str, frame: pd.DataFrame) -> None:
    """One built frame as Parquet, renamed into place whole; a column Parquet cannot hold (complex
    numbers) is a FeatureError."""
    target = built / BUILT_FILES[which]
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        objects_as_text(frame).to_parquet(temporary, index=False)
    except (pyarrow.ArrowException, ValueError, TypeError) as exc:
        raise FeatureError(f"build_features output for {which} rows cannot be stored as Parquet", "features_unstorable") from exc
    temporary.replace(target)


def objects_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns as text, missing values kept. The transform reads an object column as
    categories of str(value) (transforms._as_category_labels) whatever it holds, so this keeps
    their meaning through Parquet, which cannot hold a column mixing types (`fillna("missing")` on
    numbers) and would read Python ints back as an int64 column, numeric instead of categories."""
    objects = [name for name in frame.columns if frame[name].dtype == object]
    if not objects:
        return frame
    return frame.assign(**{name: frame[name].map(str, na_action="ignore").astype(object) for name in objects})


def read_built(built: Path, which: str, n_rows: int) -> pd.DataFrame:
    """The features stage's frame for `which` rows, checked like build_features' return value."""
    path = built / BUILT_FILES[which]
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise FeatureError(f"the features stage left no plain file of built {which} features", "features_output_invalid")
        frame = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise FeatureError(f"the features stage left no built {which} features", "features_output_invalid") from exc
    except (pyarrow.ArrowException, OSError, ValueError, TypeError) as exc:
        raise FeatureError(f"the built {which} features are not a readable Parquet file", "features_output_invalid") from exc
    return check_built(frame, n_rows, which)
