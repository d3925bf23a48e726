"""The model card of a promoted version (DESIGN §3 promote, §6 Tier 3): what the model is for,
what it was trained on and with, how it measured, who approved it and what it cannot claim.

Pure: the same facts give the same card, and `stable_json` gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CARD_SCHEMA_VERSION = 1
PROVENANCE = ("git_commit", "dataset_content_hash", "dataset_schema_hash", "uv_lock_sha256", "feature_pipeline_hash", "config_hash", "standards_sha256", "seed")
FOUR_FIFTHS = 0.8


def intended_use(standards: Mapping[str, Any]) -> str:
    """The standards' `model_card.intended_use`, or a description from the label they govern."""
    declared = (standards.get("model_card") or {}).get("intended_use")
    if declared:
        return str(declared)
    label = standards.get("label") or {}
    return (
        f"Scores the probability that {label.get('target')} equals {label.get('positive_class')} for "
        f"{standards.get('client_name')} / {standards.get('project_name')}, as decision support under human review "
        "within the governed process. Any other use needs its own validation."
    )


def _fairness_notes(report: Mapping[str, Any] | None) -> list[str]:
    notes = []
    for attribute, found in sorted(((report or {}).get("slices") or {}).items()):
        ratio = found.get("selection_rate_ratio_min_max") if isinstance(found, Mapping) else None
        if ratio is None:
            notes.append(f"selection rates across {attribute} could not be compared (no positive predictions)")
        elif ratio < FOUR_FIFTHS:
            notes.append(f"selection-rate ratio across {attribute} is {ratio:.3f}, below the four-fifths rule ({FOUR_FIFTHS})")
    return notes


def limitations(standards: Mapping[str, Any], run: Mapping[str, Any], report: Mapping[str, Any] | None) -> list[str]:
    """The standards' declared limitations, then what the evaluation itself says."""
    declared = [str(x) for x in (standards.get("model_card") or {}).get("limitations") or []]
    params, data = run.get("params") or {}, (report or {}).get("data") or {}
    found = [
        f"measured on {data.get('test_rows', 'an unknown number of')} held-out rows of one dataset ({str(params.get('dataset_content_hash'))[:12]}); "
        "other populations and later periods are not measured",
        f"split: {params.get('config.split.strategy')}; held-out share {params.get('config.split.test_size')}",
    ]
    if params.get("config.features.use_protected_attributes") != "true":
        found.append("protected attributes are excluded from the features; proxies of them may remain")
    return declared + found + _fairness_notes(report)


def model_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card from its parts: `model`, `version`, `alias`, `run`, `standards`, `report`,
    `receipt`, `approvals`, `reproduction`, `promoted_by`, `promoted_at`."""
    run, standards = card["run"], card["standards"]
    params = run.get("params") or {}
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "model": {"name": card["model"], "version": card["version"], "alias": card["alias"], "type": params.get("config.model.type")},
        "run_id": run["run_id"],
        "intended_use": intended_use(standards),
        "limitations": limitations(standards, run, card["report"]),
        "provenance": {key: params.get(key) for key in PROVENANCE},
        "metrics": dict(sorted((run.get("metrics") or {}).items())),
        "gates": list(card["receipt"]),
        "reproduction": card["reproduction"],
        "approvals": list(card["approvals"]),
        "promoted_by": card["promoted_by"],
        "promoted_at": card["promoted_at"],
    }


def card_tags(card: Mapping[str, Any]) -> dict[str, Any]:
    """Model version tags carrying the card's fields (MLflow shows them beside the version)."""
    provenance = card["provenance"]
    return {
        "promoted": "true",
        "promotion_timestamp": card["promoted_at"],
        f"mlgate.alias.{card['model']['alias']}": card["promoted_at"],
        "card.intended_use": card["intended_use"],
        "card.limitations": card["limitations"],
        "card.dataset_hash": provenance["dataset_content_hash"],
        "card.commit": provenance["git_commit"],
        "card.uv_lock_sha256": provenance["uv_lock_sha256"],
        "card.metrics": card["metrics"],
        "card.approvals": card["approvals"],
        "card.promoted_by": card["promoted_by"],
        "card.artifact": "model_card.json",
    }
