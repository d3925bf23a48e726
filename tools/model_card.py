"""The model card of a promoted version (DESIGN §3 promote, §6 Tier 3): what the model is for,
what it was trained on and with, how it measured, who approved it and what it cannot claim.

Pure: the same facts give the same card, and `stable_json` gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tools.sealed import SEALED_NOTE, is_sealed, sealed_receipt

CARD_SCHEMA_VERSION = 1
PROVENANCE = ("git_commit", "dataset_content_hash", "dataset_schema_hash", "uv_lock_sha256", "feature_pipeline_hash", "config_hash", "standards_sha256", "seed")
FOUR_FIFTHS = 0.8


def intended_use(standards: Mapping[str, Any]) -> str:
    """The standards' `model_card.intended_use`, or a description from the label they govern."""
    declared = (standards.get("model_card") or {}).get("intended_use")
    if declared:
        return str(declared)
    label = standards.get("label") or {}
    positive = label.get("positive_class")
    wanted = f"is any of {', '.join(map(str, positive))}" if isinstance(positive, list) else f"equals {positive}"
    return (
        f"Scores the probability that {label.get('target')} {wanted} for "
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


def _positives(report: Mapping[str, Any] | None) -> str:
    """` holding 3 positive labels`: test figures on a handful of positives are a coin toss, and
    the reader of a card should not have to find that in the run (runs before the count: empty)."""
    test = (((report or {}).get("split") or {}).get("test") or {})
    return f" holding {test['positives']} positive labels" if isinstance(test.get("positives"), int) else ""


def limitations(standards: Mapping[str, Any], run: Mapping[str, Any], report: Mapping[str, Any] | None) -> list[str]:
    """The standards' declared limitations, then what the evaluation itself says."""
    declared = [str(x) for x in (standards.get("model_card") or {}).get("limitations") or []]
    params, data = run.get("params") or {}, (report or {}).get("data") or {}
    found = [
        f"measured on {data.get('test_rows', 'an unknown number of')} held-out rows{_positives(report)} of one dataset ({str(params.get('dataset_content_hash'))[:12]}); "
        "other populations and later periods are not measured",
        f"split: {params.get('config.split.strategy')}; held-out share {params.get('config.split.test_size')}",
    ]
    if params.get("config.features.use_protected_attributes") != "true":
        found.append("protected attributes are excluded from the features; proxies of them may remain")
    return declared + found + _fairness_notes(report)


def model_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card from its parts: `model`, `version`, `alias`, `run`, `standards`, `report`,
    `receipt`, `approvals`, `reproduction`, `promoted_by`, `promoted_at`, `test_queries`. It is a
    document for humans: it holds the sealed test figures (agent_card removes them)."""
    run, standards = card["run"], card["standards"]
    params = run.get("params") or {}
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "model": {"name": card["model"], "version": card["version"], "alias": card["alias"], "type": params.get("config.model.type")},
        "run_id": run["run_id"],
        "intended_use": intended_use(standards),
        "limitations": limitations(standards, run, card["report"]),
        "provenance": {key: params.get(key) for key in PROVENANCE},
        "metrics": _metrics(run.get("metrics") or {}),
        "test_set": {"queries_of_this_dataset": card.get("test_queries"), "note": "times the test rows of this dataset were measured or revealed (runs, promotions, human reads); each one spends some of its independence"},
        "gates": list(card["receipt"]),
        "fairness": fairness_section(card["report"]),
        "reproduction": card["reproduction"],
        "approvals": list(card["approvals"]),
        "promoted_by": card["promoted_by"],
        "promoted_at": card["promoted_at"],
    }


SPELLING = ("column", "other_columns")  # the dataset column sliced when spelled otherwise, and the others with its key (tools/fairness.py)


def _attribute_summary(found: Mapping[str, Any]) -> dict[str, Any]:
    ratio = found.get("selection_rate_ratio_min_max")
    slices = {value: {k: s.get(k) for k in ("count", "status", "selection_rate", "selection_rate_ratio", "roc_auc") if k in s} for value, s in (found.get("slices") or {}).items()}
    return {"bins": found.get("bins"), "min_slice_size": found.get("min_slice_size"), "most_favoured": found.get("most_favoured"),
            "selection_rate_ratio_min_max": ratio, "four_fifths_met": None if ratio is None else ratio >= FOUR_FIFTHS, "slices": slices,
            **{k: found[k] for k in SPELLING if k in found}}


def fairness_section(report: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per protected attribute: slices (numeric ones binned; small ones "insufficient"), each
    slice's selection rate over the most favoured one's, and whether the four-fifths rule holds;
    on the validation rows and, for humans, the sealed test rows."""
    report = report or {}
    sealed = (report.get("sealed_test") or {}).get("slices") if isinstance(report.get("sealed_test"), Mapping) else report.get("slices")
    return {basis: {name: _attribute_summary(found) for name, found in sorted((slices or {}).items()) if isinstance(found, Mapping)}
            for basis, slices in (("validation", report.get("fairness")), ("sealed_test", sealed))}


def _metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "validation": {k: v for k, v in sorted(metrics.items()) if not is_sealed(k)},
        "sealed_test": {k: v for k, v in sorted(metrics.items()) if is_sealed(k)},
    }


def agent_card(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card as an agent may read it: no test-set figures (tools/sealed.py)."""
    shown = dict(card)
    metrics = shown.get("metrics")
    if isinstance(metrics, Mapping):
        shown["metrics"] = {"validation": metrics.get("validation"), "sealed_test": SEALED_NOTE} if "validation" in metrics else {k: v for k, v in metrics.items() if not is_sealed(str(k))}
    if isinstance(shown.get("fairness"), Mapping):
        shown["fairness"] = {**shown["fairness"], "sealed_test": SEALED_NOTE}
    if isinstance(shown.get("gates"), list):
        shown["gates"] = sealed_receipt([g for g in shown["gates"] if isinstance(g, Mapping)])
    if isinstance(shown.get("card.metrics"), Mapping):
        shown["card.metrics"] = {k: v for k, v in shown["card.metrics"].items() if not is_sealed(str(k))}
    if isinstance(shown.get("reproduction"), Mapping):
        shown["reproduction"] = _sealed_reproduction(shown["reproduction"])
    return shown


def _sealed_reproduction(reproduction: Mapping[str, Any]) -> dict[str, Any]:
    """The seed re-runs' primary metric is measured on the test rows (promote's seed check):
    an agent sees which seeds ran, never their figures."""
    seeds = reproduction.get("seed_runs")
    if not isinstance(seeds, Mapping) or "values" not in seeds:
        return dict(reproduction)
    return {**reproduction, "seed_runs": {**seeds, "values": SEALED_NOTE}}


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
        "card.metrics": card["metrics"]["validation"],  # tags are read by agents too: never the sealed test figures
        "card.approvals": card["approvals"],
        "card.promoted_by": card["promoted_by"],
        "card.artifact": "model_card.json",
    }
