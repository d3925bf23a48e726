"""The model card: deterministic, with intended use, limitations and fairness notes."""

from __future__ import annotations

import json
from typing import Any

from tools.model_card import agent_card, card_tags, intended_use, limitations, model_card
from tools.provenance import stable_json

STANDARDS = {"client_name": "demo-bank", "project_name": "credit-default", "label": {"target": "default", "positive_class": 1}}
RUN = {
    "run_id": "1" * 32,
    "params": {"git_commit": "c" * 40, "dataset_content_hash": "d" * 64, "uv_lock_sha256": "e" * 64, "seed": "42", "config.model.type": "xgboost",
               "config.split.strategy": "temporal_split", "config.split.test_size": "0.2", "config.features.use_protected_attributes": "false"},
    "metrics": {"test_roc_auc": 0.81, "baseline_logistic_regression_roc_auc": 0.78},
}  # fmt: skip
REPORT = {"data": {"test_rows": 80}, "slices": {"gender": {"selection_rate_ratio_min_max": 0.6}, "age_band": {"selection_rate_ratio_min_max": 0.9}}}


def parts(**changes: Any) -> dict[str, Any]:
    base = {"model": "demo-bank-credit-default", "version": "3", "alias": "champion", "run": RUN, "standards": STANDARDS, "report": REPORT,
            "receipt": [{"gate": "run_clean", "status": "PASS"}], "approvals": [{"id": "apr-0123456789ab", "decided_by": "bob"}],
            "reproduction": {"reproduced": "true"}, "promoted_by": {"name": "alice", "role": "human"}, "promoted_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    return {**base, **changes}


def test_the_same_promotion_gives_the_same_card_bytes() -> None:
    assert stable_json(model_card(parts())) == stable_json(model_card(parts()))


def test_the_card_carries_provenance_metrics_and_approvals() -> None:
    card = model_card(parts())
    assert card["provenance"]["dataset_content_hash"] == "d" * 64 and card["provenance"]["git_commit"] == "c" * 40
    assert card["metrics"] == {"validation": {}, "sealed_test": {"baseline_logistic_regression_roc_auc": 0.78, "test_roc_auc": 0.81}}


def test_the_card_an_agent_reads_holds_no_test_figures() -> None:
    card = model_card({**parts(), "test_queries": 4})
    shown = agent_card(card)
    assert card["test_set"]["queries_of_this_dataset"] == 4 and shown["test_set"]["queries_of_this_dataset"] == 4
    assert "0.81" not in json.dumps(shown) and "0.78" not in json.dumps(shown)
    assert card_tags(card)["card.metrics"] == {}
    assert card["approvals"][0]["decided_by"] == "bob" and card["model"] == {"name": "demo-bank-credit-default", "version": "3", "alias": "champion", "type": "xgboost"}


def test_intended_use_comes_from_the_standards_when_they_declare_it() -> None:
    assert "default equals 1" in intended_use(STANDARDS)
    assert intended_use({**STANDARDS, "model_card": {"intended_use": "Pre-screening only."}}) == "Pre-screening only."


def test_limitations_name_the_test_rows_and_unfair_selection_rates() -> None:
    found = limitations({**STANDARDS, "model_card": {"limitations": ["Not for SME lending."]}}, RUN, REPORT)
    assert found[0] == "Not for SME lending."
    assert any("80 held-out rows" in line for line in found)
    assert any("across gender is 0.600" in line for line in found) and not any("age_band" in line for line in found)


def test_limitations_count_the_positive_labels_of_the_test_window() -> None:
    counted = {**REPORT, "split": {"test": {"rows": 80, "positives": 3, "positive_rate": 0.0375}}}
    assert any("80 held-out rows holding 3 positive labels of one dataset" in line for line in limitations(STANDARDS, RUN, counted))
    assert any("80 held-out rows of one dataset" in line for line in limitations(STANDARDS, RUN, REPORT))


def test_version_tags_carry_the_card_fields() -> None:
    tags = card_tags(model_card(parts()))
    assert tags["promoted"] == "true" and tags["promotion_timestamp"] == "2026-01-01T00:00:00Z" and tags["mlgate.alias.champion"]
    assert tags["card.dataset_hash"] == "d" * 64 and tags["card.uv_lock_sha256"] == "e" * 64 and tags["card.limitations"]
