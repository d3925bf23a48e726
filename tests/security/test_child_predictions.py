"""predictions.parquet is written by the process that imported features.py, and parquet compresses
repeated values almost without bound: a child can write a file of some kilobytes that decodes to
millions of rows. The server reads it only when it declares exactly the evaluation rows it was
given, and decodes only the two columns it uses. Real parquet files, the server's own reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from server.rundirs import RunDirs
from tests.training.rundirs import eval_row_ids, write_run_dir
from tools.errors import SandboxFailed

ROW_GROUP = 500_000


def _write(path: Path, columns: dict[str, pa.Array], row_groups: int = 1) -> None:
    table = pa.table(columns)
    with pq.ParquetWriter(path, table.schema, compression="zstd") as writer:
        for _ in range(row_groups):
            writer.write_table(table)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run_dir = write_run_dir(tmp_path / "run")
    (run_dir / "outputs").mkdir()
    return run_dir


def test_a_compressed_predictions_file_declaring_millions_of_rows_is_refused(run_dir):
    constant = {"__row_id__": pa.array([0] * ROW_GROUP, pa.int64()), "score": pa.array([0.5] * ROW_GROUP, pa.float64())}
    path = run_dir / "outputs" / "predictions.parquet"
    _write(path, constant, row_groups=8)
    assert path.stat().st_size < 200_000  # 4 million rows in a few dozen kilobytes
    with pytest.raises(SandboxFailed) as caught:
        RunDirs(run_dir.parent).read_predictions(run_dir)
    assert caught.value.rule_id == "sandbox.invalid_output" and "one row per evaluation row" in caught.value.reason


def test_predictions_with_one_row_per_evaluation_row_are_read_without_their_other_columns(run_dir):
    ids = eval_row_ids(run_dir)
    padding = pa.array(["x" * 1000] * len(ids))
    _write(run_dir / "outputs" / "predictions.parquet",
           {"__row_id__": pa.array(ids, pa.int64()), "score": pa.array([0.25] * len(ids)), "padding": padding})
    frame = RunDirs(run_dir.parent).read_predictions(run_dir)
    assert list(frame.columns) == ["__row_id__", "score"] and frame["__row_id__"].tolist() == ids
