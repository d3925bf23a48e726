"""What a run's checks found, before and after training (issue 9 items 4, 5, 7, 9).

Before training (run_experiment gather, so a dry run shows it and the rules decide on it): which
columns named by the standards the dataset has, the split the server will use with its realised
window fractions, and the single-feature leakage scan on the training folds. After training: the
leakage verdict with implausible metrics, the fairness slices, and what is recorded in MLflow
(split fractions as metrics, the `mlgate.leakage` tag that keeps a flagged run from ever being the
best prior run or promoted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from policies.config_change import canonical, canonical_at, value_at
from policies.leakage import CLEAN, FLAGGED, LEAKAGE_TAG, leakage_settings
from policies.training import fraction_tolerance
from tools.columns import column_report
from tools.fairness import fairness_settings, fairness_slices
from tools.labels import labels_from_target
from tools.leakage import after_training, pre_training
from tools.listing import first_few
from tools.provenance import SHA256_HEX
from tools.splits import SplitPlan, plan_split

WINDOW_FIELDS = (("test", "split.test_size"), ("validation", "split.validation_size"))


def expected_fractions(config: Mapping[str, Any], standards: Mapping[str, Any], in_force: Mapping[str, str]) -> dict[str, float]:
    """{window: fraction} the protected fields fix. A deviation a human approved (the value in
    force) is expected instead; an approved switch to date bounds leaves that window unchecked."""
    protected = standards.get("protected_fields") or {}
    expected = {}
    for window, path in WINDOW_FIELDS:
        if path not in protected:
            continue
        approved = canonical_at(config, path) != canonical(protected[path]) and in_force.get(path) == canonical_at(config, path)
        present, value = value_at(config, path)
        chosen = (value if present else None) if approved else protected[path]
        if isinstance(chosen, (int, float)) and not isinstance(chosen, bool):
            expected[window] = float(chosen)
    return expected


def split_section(plan: SplitPlan, expected: Mapping[str, float], tolerance: float, few: int = 0) -> dict[str, Any]:
    fractions = plan.description["fractions"]
    within = all(abs(fractions[w] - want) <= tolerance for w, want in expected.items())
    section = {"strategy": plan.strategy, "fractions": fractions, "expected": dict(expected), "tolerance": tolerance, "within_tolerance": within}
    section |= {"windows": plan.description["windows"]} if "windows" in plan.description else {}
    return section | _labels_per_window(plan.description, few)


def _labels_per_window(description: Mapping[str, Any], few: int) -> dict[str, Any]:
    """Rows and positive labels of each evaluation window, and a warning for a window with fewer
    than `few` of either class: its roc_auc, gates and intervals rest on that handful of cases."""
    parts = {f"validation[{i}]" if len(description["folds"]) > 1 else "validation": f["validation"] for i, f in enumerate(description["folds"])}
    parts["test"] = description["test"]
    counted = {name: {"rows": p["rows"], "positives": p["positives"]} for name, p in parts.items() if "positives" in p}
    thin = [f"{name} ({c['positives']} positive, {c['rows'] - c['positives']} negative)" for name, c in counted.items() if min(c["positives"], c["rows"] - c["positives"]) < few]
    warning = f"few labels of one class in {', '.join(thin)}: metrics and gates measured there rest on a handful of cases (fewer than {few}); a longer history or a larger test_size gives more"
    return {"label_counts": counted, "warnings": [warning] if thin else []}


def _few(policy_config: Mapping[str, Any]) -> int:
    return int(policy_config["policy"]["split"].get("few_positives", 0))


def _can_split(columns: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    return columns["label"]["present"] and (config["split"]["strategy"] != "temporal_split" or columns["time_column"]["present"])


def _unknown_exclusions(columns: Any, exclude: list[str]) -> list[str]:
    """A features.exclude entry the dataset lacks excludes nothing: misspelt, it leaves the column
    it meant among the features. Names are shown JSON-escaped (they may hold any character)."""
    have = {str(c) for c in columns}
    unknown = [name for name in exclude if name not in have]
    if not unknown:
        return []
    return [f"features.exclude names {first_few(unknown)}, which this dataset does not have: it excludes nothing (names are exact; feature_columns lists what the run uses)"]


def before_training(frame: pd.DataFrame, config: Mapping[str, Any], features: list[str], policy_config: Mapping[str, Any], in_force: Mapping[str, str]) -> dict[str, Any]:
    """Facts `columns`, `split` and `leakage` (the last two None when the label or the needed time
    column is missing: data.columns_present denies then). Raises InvalidInput when the split
    cannot be made (missing labels, unparsable times, an empty window)."""
    standards = policy_config["standards"]
    columns = column_report(frame.columns, standards, config["data"]["target"])
    columns["warnings"] += _unknown_exclusions(frame.columns, config["features"]["exclude"])
    if not _can_split(columns, config):
        return {"columns": columns, "split": None, "leakage": None}
    labels = labels_from_target(frame[config["data"]["target"]], config["data"]["positive_class"])
    seed = int(config["experiment"]["seed"])
    plan = plan_split(frame, labels, config["split"], seed=seed, time_column=standards.get("time_column"))
    split = split_section(plan, expected_fractions(config, standards, in_force), fraction_tolerance(policy_config), _few(policy_config))
    return {"columns": columns, "split": split, "leakage": pre_training(frame, labels, plan, features, leakage_settings(policy_config), seed)}


def after(facts: Mapping[str, Any], plan: SplitPlan, metrics: Mapping[str, Any], fairness: Mapping[str, Any], policy_config: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence sections of a finished run: columns, split (from the plan really used), leakage
    (None when it was not scanned, as for reproductions), fairness."""
    split = facts.get("split") or {}
    leakage = facts.get("leakage")
    return {
        "columns": facts.get("columns"),
        "split": split_section(plan, split.get("expected") or {}, float(split.get("tolerance") or fraction_tolerance(policy_config)), _few(policy_config)),
        "leakage": after_training(leakage, metrics, leakage_settings(policy_config)) if isinstance(leakage, Mapping) else None,
        "fairness": dict(fairness),
    }


def slices(frame: pd.DataFrame, rows: np.ndarray, labels: np.ndarray, scores: np.ndarray, policy_config: Mapping[str, Any]) -> dict[str, Any]:
    """Fairness slices of the evaluated rows, binned and size-checked per the standards."""
    standards = policy_config["standards"]
    settings = fairness_settings(standards, policy_config["policy"])
    return fairness_slices(frame, rows, labels, scores, list(standards.get("protected_attributes") or []), settings)


def flagged(evidence: Mapping[str, Any]) -> bool:
    return bool((evidence.get("leakage") or {}).get("flagged"))


def tracking_records(evidence: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) for MLflow: realised split fractions, the test window's rows and positive
    labels, and the leakage tag every finished run carries."""
    fractions = evidence["split"]["fractions"]
    metrics = {f"split_{window}_fraction": float(value) for window, value in fractions.items()}
    test = (evidence["split"].get("label_counts") or {}).get("test") or {}
    metrics |= {f"split_test_{k}": float(test[k]) for k in ("rows", "positives") if k in test}  # promote's receipt shows them
    return metrics, {LEAKAGE_TAG: FLAGGED if flagged(evidence) else CLEAN}


def best_prior_filter(dataset_hash: str) -> str:
    """MLflow filter clause: only runs not flagged for leakage, on the same dataset, can be the best
    prior run: another dataset's validation window measures other rows (a new data version's later
    period), so its figure says nothing of this change. Raises ValueError for a malformed hash."""
    if not SHA256_HEX.match(dataset_hash):
        raise ValueError("a dataset content hash is 64 lowercase hex characters")
    return f"tags.`{LEAKAGE_TAG}` = '{CLEAN}' and params.dataset_content_hash = '{dataset_hash}'"


def leakage_gate(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's gate receipt entry for leakage (none when the run was not scanned)."""
    leakage = evidence.get("leakage")
    if not isinstance(leakage, Mapping):
        return []
    found = leakage["suspicious_columns"] + leakage["forbidden_features"] + [m["metric"] for m in leakage["implausible_metrics"]]
    reason = f"label leakage suspected: {found}" if leakage["flagged"] else "no label proxy among the features, no implausible metric"
    return [{"gate": "leakage", "status": "FAIL" if leakage["flagged"] else "PASS", "observed": found, "threshold": leakage["max_single_feature_auc"], "reason": reason}]


def report_sections(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence as evaluation-report keys (`split` there is the plan's own description)."""
    return {"columns": evidence["columns"], "split_fractions": evidence["split"], "leakage": evidence["leakage"], "fairness": evidence["fairness"]}
