"""The governed calls the fault and load checks make: reads and proposals an agent makes all day."""

from __future__ import annotations

import random
from typing import Any

REASONING = {
    "hypothesis_category": "hyperparameter_tuning",
    "change_description": "Deeper trees to capture interactions between income and debt",
    "expected_effect": "roc_auc improves by about one point on the validation folds",
}


def proposal(depth: int, dry_run: bool) -> tuple[str, dict[str, Any]]:
    return "propose_config_change", {"changes": {"model.params.max_depth": depth}, "reasoning": REASONING, "dry_run": dry_run}


def mixed_calls(rng: random.Random, count: int, dataset: str | None) -> list[tuple[str, dict[str, Any]]]:
    """`count` calls: mostly reads (list_runs, load_dataset), some proposals, dry and real."""
    menu = [("list_runs", {}), proposal(rng.randint(2, 8), True), proposal(rng.randint(2, 8), False)]
    if dataset:
        menu.append(("load_dataset", {"content_hash": dataset}))
    return [rng.choice(menu) if i else menu[0] for i in range(count)]
