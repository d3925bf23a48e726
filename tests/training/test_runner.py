"""The training child run in-process on tiny run directories: outputs per the contract, clean
error results, determinism for every family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.rundirs import eval_row_ids, prepared, result_document, run_stages, write_run_dir
from training.runner import main
from training.inputs import load_spec
from training.contract import ErrorResult, ProgressEvent, SuccessResult
from training.spec import MODEL_TYPES, progress_total


def run_child(run_dir: Path) -> tuple[int, SuccessResult | ErrorResult]:
    status = run_stages(run_dir)
    document = result_document(run_dir)
    model = SuccessResult if document["status"] == "ok" else ErrorResult
    return status, model.model_validate(document)


def predictions(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "outputs" / "predictions.parquet")


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_family_predicts_every_evaluation_row_deterministically(tmp_path, model_type):
    first = write_run_dir(tmp_path / "a", model_type, seed=5)
    second = write_run_dir(tmp_path / "b", model_type, seed=5)
    (status, result), _ = run_child(first), run_child(second)
    assert status == 0 and result.status == "ok" and result.n_eval_rows == 50
    assert predictions(first)["__row_id__"].tolist() == eval_row_ids(first)
    assert predictions(first)["score"].between(0, 1).all()
    pd.testing.assert_frame_equal(predictions(first), predictions(second))
    events = [ProgressEvent.model_validate_json(line) for line in (first / "outputs" / "progress.jsonl").read_text().splitlines()]
    total = progress_total(load_spec(first / "inputs" / "spec.json").model)
    assert [e.step for e in events] == list(range(1, total + 1))  # the server bounds progress by this total
    assert all(e.metrics["train_loss"] > 0 for e in events)
    assert (first / "outputs" / "model" / "feature_transform.json").is_file()


def test_torch_reports_the_effective_batch_size(tmp_path):
    run_dir = write_run_dir(tmp_path, "torch_mlp", params={"epochs": 2, "batch_size": 8, "grad_accum_steps": 3})
    status, result = run_child(run_dir)
    assert status == 0 and result.effective_batch_size == 24 and result.device == "cpu"
    # 150 rows / 8 = 19 micro-batches per epoch -> 7 optimizer steps (6 full windows + the tail)
    assert result.details["optimizer_steps"] == 14


def test_a_different_seed_gives_different_predictions(tmp_path):
    first = write_run_dir(tmp_path / "a", "random_forest", seed=1)
    second = write_run_dir(tmp_path / "b", "random_forest", seed=2)
    run_child(first), run_child(second)
    assert not predictions(first).equals(predictions(second))


def test_features_that_raise_give_a_data_free_error_naming_type_and_line(tmp_path):
    source = "def build_features(frame):\n    secret = frame['income'].iloc[0]\n    raise ValueError(f'bad {secret}')\n"
    status, result = run_child(write_run_dir(tmp_path, features_source=source))
    assert status == 1 and result.error_type == "ValueError"
    assert (result.phase, result.code, result.features_line) == ("build_features", None, 3)
    assert "features.py line 3" in result.message and "bad" not in result.message


def test_sys_exit_in_features_still_ends_with_an_error_result(tmp_path):
    source = "import sys\ndef build_features(frame):\n    sys.exit(0)\n"
    status, result = run_child(write_run_dir(tmp_path, features_source=source))
    assert status == 1 and result.error_type == "SystemExit"


def test_evaluation_rows_carrying_labels_are_refused(tmp_path):
    run_dir = write_run_dir(tmp_path)
    frame = pd.read_parquet(run_dir / "inputs" / "eval.parquet").assign(__label__=0)
    frame.to_parquet(run_dir / "inputs" / "eval.parquet")
    status, result = run_child(run_dir)
    assert status == 1 and result.error_type == "SpecError" and "must not carry labels" in result.message
    assert (result.phase, result.code) == ("inputs", "eval_labelled")


def test_build_features_never_sees_labels_or_row_ids(tmp_path):
    source = ("def build_features(frame):\n    assert not {'__label__', '__row_id__'} & set(frame.columns)\n"
              "    return frame\n")
    status, _ = run_child(write_run_dir(tmp_path, features_source=source))
    assert status == 0


def test_an_unknown_hyperparameter_fails_with_its_name(tmp_path):
    status, result = run_child(write_run_dir(tmp_path, "xgboost", params={"n_estimators": 5, "eta": 0.3}))
    assert status == 1 and result.error_type == "SpecError" and "eta" in result.message


def test_cuda_for_a_cpu_only_family_is_a_device_error(tmp_path):
    status, result = run_child(write_run_dir(tmp_path, "random_forest", device="cuda"))
    assert status == 1 and result.error_type == "DeviceError"


def test_memory_errors_are_reported_as_the_memory_limit(tmp_path):
    source = "def build_features(frame):\n    raise MemoryError()\n"
    status, result = run_child(write_run_dir(tmp_path, features_source=source))
    assert status == 1 and result.error_type == "MemoryError"


def test_logistic_regression_artifact_alone_reproduces_its_predictions(tmp_path):
    run_dir = write_run_dir(tmp_path, "logistic_regression")
    assert run_child(run_dir)[0] == 0
    model = json.loads((run_dir / "outputs" / "model" / "model.json").read_text())
    data, _, _ = prepared(run_dir)
    expected = 1 / (1 + np.exp(-(data.x_eval.astype("float64") @ np.array(model["coef"]) + model["intercept"])))
    np.testing.assert_allclose(predictions(run_dir)["score"], expected, rtol=1e-6)


def test_the_child_fits_no_baseline_a_spec_asking_for_one_is_refused(tmp_path):
    run_dir = write_run_dir(tmp_path / "run", "xgboost")
    spec_path = run_dir / "inputs" / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec_path.write_text(json.dumps({**spec, "baseline_model": {"type": "logistic_regression", "params": {}}}))
    status, result = run_child(run_dir)
    assert status == 1 and (result.error_type, result.phase, result.code) == ("SpecError", "spec", "spec_invalid")
    assert [p.name for p in (run_dir / "built").iterdir()] == ["result.json"] and not (run_dir / "outputs").exists()


def test_a_declared_text_column_that_build_features_parses_into_numbers_is_encoded_as_a_number(tmp_path):
    source = "import pandas as pd\n\ndef build_features(frame):\n    out = frame.copy()\n    out['segment'] = (out['segment'] == 'sme').astype('float64')\n    return out\n"
    run_dir = write_run_dir(tmp_path / "parsed", features_source=source)
    _, transform, _ = prepared(run_dir)
    assert "segment" in transform.numeric and "segment" not in transform.categories


def test_a_declared_column_build_features_leaves_as_it_came_stays_a_category(tmp_path):
    run_dir = write_run_dir(tmp_path / "kept")
    _, transform, _ = prepared(run_dir)
    assert transform.categories["segment"] and "segment" not in transform.numeric


def with_context(run_dir: Path, context: list[str]) -> Path:
    """The spec's features without `context`, which build_features gets beside them."""
    spec_path = run_dir / "inputs" / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec_path.write_text(json.dumps({**spec, "feature_columns": [c for c in spec["feature_columns"] if c not in context], "context_columns": context}))
    return run_dir


def test_a_build_features_taking_context_gets_the_context_columns_and_they_never_become_features(tmp_path):
    source = "def build_features(frame, context):\n    out = frame.copy()\n    out['decade'] = context['age'] // 10\n    out['age'] = context['age']\n    return out\n"
    run_dir = with_context(write_run_dir(tmp_path / "context", features_source=source), ["age"])
    _, transform, _ = prepared(run_dir)
    assert "decade" in transform.numeric and "age" not in transform.columns
    status, result = run_child(run_dir)
    assert status == 0 and "age" not in result.feature_names and "decade" in result.feature_names


def test_a_build_features_of_one_argument_never_sees_the_context_columns(tmp_path):
    """A features.py written before context existed gets exactly the feature columns, as it did."""
    source = "def build_features(frame):\n    assert 'age' not in frame.columns\n    return frame.copy()\n"
    status, result = run_child(with_context(write_run_dir(tmp_path / "one", features_source=source), ["age"]))
    assert status == 0 and not any(name.startswith("age") for name in result.feature_names)


def test_build_features_that_returns_only_context_columns_fails_naming_them(tmp_path):
    source = "def build_features(frame, context):\n    return context[['age']]\n"
    status, result = run_child(with_context(write_run_dir(tmp_path / "only", features_source=source), ["age"]))
    assert status == 1 and (result.phase, result.code) == ("build_features", "features_no_columns")


def fit_after_tampering(run_dir: Path, tamper) -> tuple[int, ErrorResult]:
    """The features stage runs, `tamper(built)` changes what it left, then the fit stage runs."""
    assert main(["--run-dir", str(run_dir), "--stage", "features"]) == 0
    tamper(run_dir / "built")
    status = main(["--run-dir", str(run_dir), "--stage", "fit"])
    return status, ErrorResult.model_validate_json((run_dir / "outputs" / "result.json").read_text())


def _drop_a_row(built: Path) -> None:
    frame = pd.read_parquet(built / "eval.parquet")
    frame.iloc[1:].to_parquet(built / "eval.parquet", index=False)


def _not_parquet(built: Path) -> None:
    (built / "train.parquet").write_bytes(b"PAR1 not really")


def _a_link(built: Path) -> None:
    (built / "train.parquet").unlink()
    (built / "train.parquet").symlink_to("/sandbox/inputs/train.parquet")


def _duplicate_names(built: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(built / "eval.parquet")
    pq.write_table(pa.table([table.column(0), table.column(1)], names=["income", "income"]), built / "eval.parquet")


@pytest.mark.parametrize(("tamper", "code"), [
    (_drop_a_row, "features_row_count"), (_not_parquet, "features_output_invalid"),
    (_a_link, "features_output_invalid"), (_duplicate_names, "features_output_invalid"),  # pandas refuses repeated names
])
def test_the_fit_stage_checks_the_built_frames_again_as_the_features_stage_may_not_have(tmp_path, tamper, code):
    """built/ is written by the process that ran features.py: it could skip build_features' checks."""
    status, result = fit_after_tampering(write_run_dir(tmp_path / "run"), tamper)
    assert status == 1 and (result.phase, result.code) == ("build_features", code)
    assert not (tmp_path / "run" / "outputs" / "predictions.parquet").exists()


def test_a_column_parquet_cannot_store_fails_in_the_features_stage(tmp_path):
    source = "def build_features(frame):\n    out = frame.copy()\n    out['c'] = out['income'] * 1j\n    return out\n"
    status, result = run_child(write_run_dir(tmp_path / "run", features_source=source))
    assert status == 1 and (result.phase, result.code) == ("build_features", "features_unstorable")
    assert not (tmp_path / "run" / "outputs").exists()  # the fit stage never started


def test_object_columns_mean_through_built_what_they_meant_in_one_process(tmp_path):
    """Object columns are categories of str(value): one mixing numbers and text (fillna('missing')),
    and one of Python ints, which Parquet alone would hand back as a numeric column."""
    source = ("import pandas as pd\n\ndef build_features(frame):\n    out = frame.copy()\n"
              "    out['income_text'] = out['income'].round(-1).astype(object).where(out.index % 3 != 0, None).fillna('missing')\n"
              "    out['band'] = pd.Series([int(v // 20) for v in out['age']], dtype=object)\n    return out\n")
    run_dir = write_run_dir(tmp_path / "run", features_source=source)
    _, transform, _ = prepared(run_dir)
    assert "missing" in transform.categories["income_text"] and "income_text" not in transform.numeric
    assert transform.categories["band"] and "band" not in transform.numeric
    assert run_child(run_dir)[0] == 0


def test_the_fit_stage_never_imports_features_py(tmp_path):
    """A features.py that would fail at import is never run by the fit stage: only the features stage reads it."""
    run_dir = write_run_dir(tmp_path / "run")
    assert main(["--run-dir", str(run_dir), "--stage", "features"]) == 0
    (run_dir / "inputs" / "features.py").write_text("raise SystemExit('imported')\n")
    assert main(["--run-dir", str(run_dir), "--stage", "fit"]) == 0
