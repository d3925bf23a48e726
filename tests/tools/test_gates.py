"""The gate receipt: each configured threshold passes or fails on the measured figures, gates that
do not apply yet are skipped, and anything the server cannot check fails closed."""

from __future__ import annotations

import pytest

from tools.gates import gate_receipt, gates_passed

TEMPLATE_GATES = {"primary_metric": "roc_auc", "min_primary_metric": 0.70, "min_lift_over_baseline": 0.0, "champion_tolerance": 0.005, "max_seed_variance": 0.005}


def test_gate_receipt_passes_and_fails_each_configured_threshold() -> None:
    receipt = gate_receipt(TEMPLATE_GATES, {"primary_metric": 0.74, "baseline_primary_metric": 0.76, "champion_primary_metric": 0.745})
    by_gate = {entry["gate"]: entry for entry in receipt}
    assert [entry["gate"] for entry in receipt] == sorted(by_gate)
    assert by_gate["min_primary_metric"]["status"] == "PASS" and by_gate["min_primary_metric"]["observed"] == 0.74
    assert by_gate["min_lift_over_baseline"]["status"] == "FAIL"
    assert by_gate["min_lift_over_baseline"]["observed"] == pytest.approx(-0.02)
    assert by_gate["champion_tolerance"]["status"] == "PASS"
    assert by_gate["max_seed_variance"]["status"] == "SKIPPED"
    assert not gates_passed(receipt)


def test_gate_receipt_skips_the_champion_gate_without_a_champion_and_can_pass() -> None:
    receipt = gate_receipt(TEMPLATE_GATES, {"primary_metric": 0.80, "baseline_primary_metric": 0.75})
    assert {e["gate"]: e["status"] for e in receipt} == {"champion_tolerance": "SKIPPED", "max_seed_variance": "SKIPPED", "min_lift_over_baseline": "PASS", "min_primary_metric": "PASS"}
    assert gates_passed(receipt)


@pytest.mark.parametrize(
    ("gates", "observed", "reason"),
    [
        ({"min_primary_metric": 0.7}, {"primary_metric": None}, "not measured"),
        ({"min_primary_metric": "high"}, {"primary_metric": 0.9}, "not a number"),
        ({"max_feature_count": 10}, {"primary_metric": 0.9}, "unknown gate"),
        ({"primary_metric": "log_loss", "min_primary_metric": 0.3}, {"primary_metric": 0.35}, "at least as good"),
    ],
)
def test_gate_receipt_fails_closed(gates: dict, observed: dict, reason: str) -> None:
    (entry,) = gate_receipt(gates, observed)
    assert entry["status"] == "FAIL" and reason in entry["reason"]


def test_seed_variance_must_be_strictly_below_the_threshold() -> None:
    at = {g["gate"]: g for g in gate_receipt(TEMPLATE_GATES, {"primary_metric": 0.8, "baseline_primary_metric": 0.7, "seed_variance": 0.005})}
    below = {g["gate"]: g for g in gate_receipt(TEMPLATE_GATES, {"primary_metric": 0.8, "baseline_primary_metric": 0.7, "seed_variance": 0.0049})}
    assert at["max_seed_variance"]["status"] == "FAIL" and below["max_seed_variance"]["status"] == "PASS"


def test_the_champion_gate_names_why_it_compares_point_estimates() -> None:
    unpaired = "the champion was measured on another dataset (ffffffffffff): two point estimates on different rows, not a paired comparison on the same rows"
    entry = {e["gate"]: e for e in gate_receipt(TEMPLATE_GATES, {"primary_metric": 0.80, "champion_primary_metric": 0.79, "champion_unpaired": unpaired})}["champion_tolerance"]
    assert entry["status"] == "PASS" and entry["reason"] == f"roc_auc may trail the champion by at most 0.005; observed 0.01; {unpaired}"
