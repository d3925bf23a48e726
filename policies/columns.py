"""Rules over the columns the standards name and the dataset a run uses (issue 9 item 4).

Facts: `columns` as tools/columns.py column_report builds it (`label`, `time_column`,
`pii_columns`, `protected_attributes`), and `config` (the run's experiment config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule

SOURCE = "issue 9 item 4: refuse clearly, before training"


def _missing_required(facts: Mapping[str, Any]) -> list[str]:
    columns, strategy = facts["columns"], facts["config"]["split"]["strategy"]
    missing = []
    if not columns["label"]["present"]:
        missing.append(f"label column {columns['label']['name']!r}")
    if strategy == "temporal_split" and not columns["time_column"]["present"]:
        missing.append(f"time column {columns['time_column']['name']!r} (split.strategy is temporal_split)")
    return missing


@rule(
    "data.columns_present",
    source=SOURCE,
    description="The dataset has the label column, and the standards' time column when the split is temporal; checked before any training.",
)
def columns_present(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    missing = _missing_required(facts)
    if not missing:
        return Decision.allow("data.columns_present", "the label (and time column, if needed) are in the dataset")
    return Decision.deny(
        "data.columns_present",
        "the dataset lacks the " + " and the ".join(missing) + " that the standards name",
        "choose a dataset that has these columns (load_dataset lists its columns), or ask the operator to correct "
        "label.target / time_column in the standards (mlgate standards set)",
    )


@rule(
    "fairness.protected_attributes_present",
    source=SOURCE,
    description="At least one protected attribute named by the standards is in the dataset, unless fairness.allow_no_protected_attributes is true.",
)
def protected_attributes_present(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    found = facts["columns"]["protected_attributes"]
    settings = {**(config["policy"].get("fairness") or {}), **(config["standards"].get("fairness") or {})}
    allowed = settings.get("allow_no_protected_attributes") is True
    absent = f"; absent: {found['absent']}" if found["absent"] else ""
    if found["present"] or not found["absent"]:
        return Decision.allow("fairness.protected_attributes_present", f"protected attributes in the dataset: {found['present']}{absent}")
    if allowed:
        return Decision.allow("fairness.protected_attributes_present", f"no protected attribute in the dataset, allowed by the standards{absent}")
    return Decision.deny(
        "fairness.protected_attributes_present",
        f"none of the protected attributes the standards name is in the dataset ({found['absent']}): the run would have no fairness evidence",
        "choose a dataset that carries them, or ask the operator to correct protected_attributes (or set "
        "fairness.allow_no_protected_attributes: true) in the standards",
    )
