"""server/sandbox_vocabulary.py: progress and failure words come from the server, bounded by the
spec it wrote, whatever the child reports."""

from __future__ import annotations

import json

import pytest

from server.sandbox_vocabulary import (
    OTHER_ERROR, ProgressGate, ProgressPlan, child_error_text, clamp_metrics, plan_for, read_spec, significant,
)
from training.contract import ErrorResult, ProgressEvent
from training.spec import parse_spec


@pytest.mark.parametrize(
    ("model", "total", "messages"),
    [
        ({"type": "torch_mlp", "params": {"epochs": 3}}, 3, ["epoch 1/3", "epoch 2/3", "epoch 3/3"]),
        ({"type": "xgboost", "params": {"n_estimators": 25}}, 9, ["round 3/25", "round 6/25"]),
        ({"type": "logistic_regression", "params": {}}, 1, ["logistic_regression fitted"]),
    ],
)
def test_the_plan_comes_from_the_spec_the_server_wrote(tmp_path, model, total, messages):
    spec = tmp_path / "spec.json"
    spec.write_text(parse_spec(json.dumps({"model": model, "seed": 1, "feature_columns": ["a"]})).model_dump_json())
    plan = plan_for(read_spec(spec))
    assert plan.total == total
    assert [plan.message(step) for step in range(1, len(messages) + 1)] == messages


def test_an_unreadable_spec_admits_no_progress(tmp_path):
    gate = ProgressGate(plan_for(read_spec(tmp_path / "missing.json")))
    assert gate.admit(ProgressEvent(step=1)) is None and gate.rejected == 1


def test_steps_must_grow_and_stay_within_the_total():
    gate = ProgressGate(ProgressPlan("torch_mlp", 3))
    steps = [gate.admit(ProgressEvent(step=s)) for s in (1_000_000, 2, 2, 1, 3, 4)]
    assert [s.message if s else None for s in steps] == [None, "epoch 2/3", None, None, "epoch 3/3", None]
    assert gate.rejected == 4


def test_metrics_are_allowlisted_finite_and_rounded_to_four_digits():
    hostile = {"train_loss": 0.123456789, "row_17_alice_52000": 1.0, "eval_loss": 2.0}
    assert clamp_metrics(hostile) == {"train_loss": 0.1235}
    assert clamp_metrics({"train_loss": float("nan")}) == {} and significant(123456.0) == 123500.0


def test_error_types_outside_the_allowlist_are_not_named():
    result = ErrorResult(error_type="KeyError", phase="fit", features_line=3, message="'alice'")
    assert child_error_text(result, features_lines=10) == "the training child failed while training the model: KeyError at src/features.py line 3"
    assert OTHER_ERROR in child_error_text(result.model_copy(update={"error_type": "alice_52000"}), 10)
