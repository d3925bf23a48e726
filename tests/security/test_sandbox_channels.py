"""The sandbox's output channels, attacked through the sanctioned edit: a committed src/features.py
that forges the baseline, encodes data in progress lines, or raises errors carrying rows. Real
workspace, real bwrap children, real sqlite MLflow, real MCP client."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.git import GitRepo
from server.sandbox_vocabulary import significant
from tests.server.test_sandbox import bwrap  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.tools.test_run_experiment import REASONING, call, governed  # noqa: F401 - fixture

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bwrap")]
# Every progress message the client may see: stage names and words of the server, numbers of the spec.
VOCABULARY = re.compile(
    r"^(?:(?:fold-\d|final): (?:training on \d+ rows|epoch \d+/\d+|round \d+/\d+|[a-z_]+ fitted)"
    r"|evaluating|waiting for a run slot \(\d+/\d+ busy\))\Z"
)
# Assembled at run time, so the source of features.py (copied into run inputs) never holds it.
MARKER = "LEAK" + "MARK"

FORGE_BASELINE = '''
import sys

import numpy as np
import pandas as pd

OUTPUTS = "/sandbox/built"  # the features stage's writable directory (it never sees outputs/)


def _constant(rows):
    return pd.DataFrame({"__row_id__": rows, "score": 0.5})


def _forge():
    """Everything that once let features.py decide the baseline: a constant-score file, the child's
    baseline function, and scikit-learn's logistic regression in this process."""
    rows = pd.read_parquet("/sandbox/inputs/eval.parquet", columns=["__row_id__"])["__row_id__"]
    _constant(rows).to_parquet(f"{OUTPUTS}/baseline_predictions.parquet", index=False)
    runner = sys.modules.get("training.runner")
    if runner is not None and hasattr(runner, "fit_baseline"):
        runner.fit_baseline = lambda spec, data, outputs, row_ids: _constant(row_ids).to_parquet(
            f"{OUTPUTS}/baseline_predictions.parquet", index=False)
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return
    LogisticRegression.predict_proba = lambda self, x: np.full((len(x), 2), 0.5)


_forge()


def build_features(frame):
    return frame[["credit_history_months"]]  # a weak model: only a forged baseline lets it pass the lift gate
'''

LEAK_PROGRESS = '''
import json

LONG = "row_0_income_" + "9" * 50


def _leak(frame):
    first = frame.iloc[0]
    lines = [
        {"step": 1000000, "total": 1, "message": "leakrow 1000000/1"},
        {"step": 1000000, "metrics": {"train_loss": float(first["income"])}},
        {"step": 1, "metrics": {"train_loss": float(first["income"]) / 1e5 + 0.123456789,
                                **{f"{LONG[:40]}_{i}": float(i) for i in range(15)}}},
        {"step": 2, "total": 10**12, "metrics": {"leak_income": float(first["income"])}},
    ]
    for directory in ("/sandbox/outputs", "/sandbox/built"):  # outputs/ is not there in the features stage
        try:
            with open(f"{directory}/progress.jsonl", "a") as handle:
                for line in lines:
                    handle.write(json.dumps(line) + "\\n")
        except OSError:
            continue


def build_features(frame):
    _leak(frame)
    return frame
'''

LEAK_ERROR = {
    "training_error_text": '''
from training.errors import FeatureError


def build_features(frame):
    raise FeatureError("LEAK" + "MARK " + frame.head(5).to_csv(), "features_row_count")
''',
    "exception_type_name": '''
import re


def build_features(frame):
    name = "LEAK" + "MARK_" + re.sub(r"[^A-Za-z0-9]", "_", "_".join(map(str, frame.iloc[0, :3])))
    raise type(name, (Exception,), {})("LEAK" + "MARK " + frame.head(5).to_csv())
''',
}


def commit_features(governed: dict[str, Any], source: str) -> None:
    """The sanctioned edit: features.py changed and committed, so the run is clean, not dirty."""
    (governed["workspace"] / "src/features.py").write_text(source)
    GitRepo(governed["workspace"]).commit_all("features: try the channels out of the sandbox")


async def test_features_cannot_forge_the_baseline_the_lift_gate_compares_with(governed: dict[str, Any]) -> None:
    honest = (await call(governed, {"reasoning": REASONING})).structured_content
    commit_features(governed, FORGE_BASELINE)
    result = await call(governed, {"reasoning": REASONING})
    assert not result.is_error, result.structured_content
    content = result.structured_content
    assert content["dirty"] is False
    assert content["baseline_metrics"]["logistic_regression"] == honest["baseline_metrics"]["logistic_regression"]
    assert content["baseline_metrics"]["logistic_regression"]["roc_auc"] > 0.6
    lift = next(g for g in content["gate_receipt"]["gates"] if g["gate"] == "min_lift_over_baseline")
    assert lift["status"] == "FAIL" and content["gate_receipt"]["passed"] is False


async def test_progress_lines_written_by_features_reach_the_client_only_as_vocabulary(governed: dict[str, Any]) -> None:
    commit_features(governed, LEAK_PROGRESS)
    seen: list[tuple[float, float | None, str]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message or ""))

    async with Client(build_server(governed["settings"], governed["ports"])) as client:
        result = await client.call_tool("run_experiment", {"reasoning": REASONING}, progress_callback=on_progress)
    assert not result.is_error, result.structured_content
    assert seen and all(VOCABULARY.match(message) for _, _, message in seen), [m for *_, m in seen]
    assert all(total is None or progress <= total for progress, total, _ in seen)
    assert "round 20/20" in " ".join(m for *_, m in seen)  # the model's own progress still arrives
    run = governed["ports"].tracking.get_run(result.structured_content["run_id"])
    step_metrics = {name: value for name, value in run["metrics"].items() if name.startswith(("fold-", "final."))}
    assert set(step_metrics) == {"fold-0.train_loss", "final.train_loss"}
    assert all(value == significant(value) for value in step_metrics.values())


def _files_outside_run_dirs(state_dir: Path) -> list[Path]:
    """Everything the server keeps but the run directories (the operator's log lives there)."""
    return [p for p in state_dir.rglob("*") if p.is_file() and "runs" not in p.relative_to(state_dir).parts[:1]]


@pytest.mark.parametrize("attack", sorted(LEAK_ERROR))
async def test_error_text_carrying_rows_reaches_neither_client_nor_mlflow_nor_audit(governed: dict[str, Any], attack: str) -> None:
    commit_features(governed, LEAK_ERROR[attack])
    result = await call(governed, {"reasoning": REASONING})
    assert result.is_error and result.structured_content["rule_id"] == "sandbox.child_error"
    shown = str(result.structured_content) + " ".join(getattr(c, "text", "") for c in result.content)
    assert MARKER not in shown and "running build_features" in shown
    state_dir = governed["settings"].state_dir
    holding = [p.name for p in _files_outside_run_dirs(state_dir) if MARKER.encode() in p.read_bytes()]
    assert holding == []  # not in mlflow.db (params, tags, end reason), artifacts or the audit chain
    reports = list((state_dir / "runs").glob("*/*/logs/child_report.json"))
    assert reports and any(MARKER in report.read_text() for report in reports)  # the operator still has it
