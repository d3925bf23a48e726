"""run_experiment with the sealed holdout, on one real run (bwrap children, sqlite MLflow): the
result carries validation figures only, the test figures are logged for humans, the run counts one
test-set query, CV std is unknown with one window, and the reasoning params hold what was measured."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.tools.test_run_experiment import REASONING, call, governed  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


async def test_an_agent_run_returns_validation_figures_and_keeps_the_test_set_sealed(governed: dict[str, Any]) -> None:  # noqa: F811
    result = await call(governed, {"reasoning": REASONING})
    assert not result.is_error, result.structured_content
    content = result.structured_content
    run = governed["ports"].tracking.get_run(content["run_id"])
    metrics = run["metrics"]
    assert content["metrics_basis"] == "validation" and content["test_set"]["sealed"] is True
    assert content["metrics"]["roc_auc"]["value"] == pytest.approx(metrics["val_roc_auc"])
    # the continuous test figures (a coincidence with a validation figure is all but impossible)
    sealed = {k: json.dumps(round(metrics[k], 6)) for k in ("test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "baseline_logistic_regression_roc_auc")}
    text = json.dumps(content)
    assert {k: v for k, v in sealed.items() if v in text} == {}
    assert {"test_roc_auc", "baseline_logistic_regression_roc_auc", "test_baseline_paired_lcb", "test_calibration_paired_lcb"} <= set(metrics)

    # one temporal validation window: no spread to measure, said so rather than 0.0
    assert all(entry["std"] is None and "std_reason" not in entry for entry in content["cv_metrics"].values())
    assert content["cv_std_reason"] == "std is unknown: 1 validation window(s) measured each metric; a spread needs at least 2"

    receipt = {g["gate"]: g for g in content["gate_receipt"]["gates"]}
    assert content["gate_receipt"]["basis"] == "validation"
    assert set(receipt["calibration_vs_prior"]["observed"]) == {"improvement", "lower_bound", "confidence"}
    assert receipt["min_lift_over_baseline"]["observed"]["confidence"] == 0.95

    assert run["params"]["reasoning.outcome"] == content["outcome"] == "neutral"
    assert run["params"]["reasoning.metric_delta"] == "null" and "reasoning.change_description" in run["params"]

    dataset = content["dataset_hash"]
    assert content["test_set"]["queries_of_this_dataset"] == 1 == governed["ports"].test_queries.count(dataset)
    record = [r for r in governed["ports"].audit.tail(20) if r.get("kind") == "test_query"][-1]
    assert record["run_id"] == content["run_id"] and record["purpose"] == "computed by run_experiment"
