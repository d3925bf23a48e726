"""Rules against label leakage (issue 9 item 7).

Settings: configs/policy.yaml `leakage` overlaid with the standards' own `leakage` section:

    forbidden_columns        columns that are never features (known proxies of the label)
    max_single_feature_auc   a feature that alone separates the classes better than this is suspicious
    implausible_metrics      {metric: bound} beyond which a result is not believed (losses: below)
    action                   flag (the run trains, is flagged, never becomes the best prior run and
                             cannot be promoted) or deny (the run does not start)

Facts (run_experiment): `feature_columns`, `leakage` as tools/leakage.py pre_training builds it
(None when it could not be computed, e.g. no label). Facts (promote): `run` with its `tags`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule

SOURCE = "issue 9 item 7: leakage gate"
LEAKAGE_TAG = "mlgate.leakage"
FLAGGED, CLEAN = "flagged", "clean"


def leakage_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's leakage defaults overlaid with the standards' `leakage` section."""
    return {**(config["policy"].get("leakage") or {}), **(config["standards"].get("leakage") or {})}


@rule("leakage.forbidden_columns", source=SOURCE, description="Columns the standards list under leakage.forbidden_columns are never features.")
def forbidden_columns(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    forbidden = set(leakage_settings(config).get("forbidden_columns") or [])
    used = [c for c in facts["feature_columns"] if c in forbidden]
    if not used:
        return Decision.allow("leakage.forbidden_columns", "no forbidden (leakage) column among the features")
    return Decision.deny(
        "leakage.forbidden_columns",
        f"columns the standards forbid as features (label proxies) would be features: {used}",
        f"add {used} to features.exclude with propose_config_change",
    )


@rule(
    "leakage.single_feature_proxy",
    source=SOURCE,
    description="No feature alone predicts the label on the training folds beyond leakage.max_single_feature_auc; per leakage.action such a run is flagged or denied.",
)
def single_feature_proxy(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    section = facts.get("leakage")
    if not isinstance(section, Mapping):
        return Decision.allow("leakage.single_feature_proxy", "not checked: the split could not be made (see the other rules)")
    suspicious = list(section["suspicious_columns"])
    if not suspicious:
        return Decision.allow("leakage.single_feature_proxy", f"no feature alone exceeds AUC {section['max_single_feature_auc']:g} on the training folds")
    found = ", ".join(f"{c} ({section['single_feature_auc'].get(c, 'n/a')})" for c in suspicious)
    if leakage_settings(config).get("action") != "deny":
        return Decision.allow("leakage.single_feature_proxy", f"flagged: single-feature AUC above {section['max_single_feature_auc']:g}: {found}; the run will be flagged")
    return Decision.deny(
        "leakage.single_feature_proxy",
        f"features that alone predict the label on the training folds (AUC above {section['max_single_feature_auc']:g}): {found}",
        f"exclude {suspicious} with propose_config_change (features.exclude) unless a human confirms they are known at decision time",
    )


@rule("leakage.not_flagged", source=SOURCE, description="A run flagged for leakage is never promoted.")
def not_flagged(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    tags = (facts["run"].get("tags") or {}) if isinstance(facts.get("run"), Mapping) else {}
    if tags.get(LEAKAGE_TAG) != FLAGGED:
        return Decision.allow("leakage.not_flagged", "the run is not flagged for leakage")
    return Decision.deny(
        "leakage.not_flagged",
        "the run is flagged for leakage (a label proxy among its features or implausible metrics); its metrics are not evidence",
        "run again without the flagged columns (get_run shows them under leakage) and promote that run",
    )
