"""Rule cases: every policy test module lists `CASES`; test_rule_coverage runs them all and fails
when a registered rule lacks an allow case or a deny case."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

BASE_STANDARDS: dict[str, Any] = {
    "label": {"target": "default", "positive_class": 1},
    "time_column": "application_date",
    "pii_columns": ["customer_id", "full_name", "email"],
    "protected_attributes": ["gender", "age_band"],
    "protected_fields": {
        "data.target": "default",
        "data.positive_class": 1,
        "evaluation.primary_metric": "roc_auc",
        "split.test_size": 0.2,
        "features.use_protected_attributes": False,
    },
    "allowed": {
        "metrics": ["roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "brier"],
        "split_strategies": ["stratified_kfold", "temporal_split"],
        "model_types": ["xgboost", "torch_mlp", "logistic_regression", "random_forest"],
        "hypothesis_categories": ["baseline", "feature_engineering", "hyperparameter_tuning", "model_family"],
    },
    "gates": {"primary_metric": "roc_auc", "min_primary_metric": 0.7, "min_lift_over_baseline": 0.0, "champion_tolerance": 0.005, "max_seed_variance": 0.005},
}
BASE_POLICY: dict[str, Any] = {
    "documents": {"max_bytes": 65536, "max_depth": 12, "max_nodes": 5000},
    "reasoning": {"min_chars": 20, "min_words": 4},
    "datasets": {"sample_rows": 5, "max_files": 64},
    "audit": {"tail_default": 50},
    "approvals": {"max_pending_per_requester": 3},
}


def config(**overrides: Any) -> dict[str, Any]:
    """A policy config as StandardsSource.policy_config builds it, with overrides."""
    base = {"standards": BASE_STANDARDS, "standards_sha256": "0" * 64, "standards_drift": False, "policy": BASE_POLICY}
    return {**base, **overrides}


@dataclass(frozen=True)
class RuleCase:
    rule_id: str
    expect: Literal["allow", "deny"]
    facts: Any
    config: Mapping[str, Any] = field(default_factory=config)
    name: str = ""

    @property
    def id(self) -> str:
        return f"{self.rule_id}-{self.expect}-{self.name}"
