"""Rules over the columns the standards name and the dataset a run uses (issue 9 item 4).

Facts: `columns` as tools/columns.py column_report builds it (`label`, `time_column`,
`pii_columns`, `protected_attributes`), and `config` (the run's experiment config).

A run reads the label and the time column by their exact names. A column with the same
policies/data.py column_key in another spelling (`Loan_Status`, `loan_status `, `ｌｏａｎ_ｓｔａｔｕｓ`)
is a look-alike: never taken for them, never a feature (tools/run_features.py), and named in the
denials below so that whoever imports the data can rename or drop it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from policies.column_names import refused_names
from policies.decision import Decision, rule

SOURCE = "issue 9 item 4: refuse clearly, before training"


def _missing_required(facts: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str]]:
    """(report entry, what it is) of the label, and of the time column under a temporal split, when absent."""
    columns, strategy = facts["columns"], facts["config"]["split"]["strategy"]
    missing = [(columns["label"], "label column")] if not columns["label"]["present"] else []
    if strategy == "temporal_split" and not columns["time_column"]["present"]:
        missing.append((columns["time_column"], "time column"))
    return missing


def _named(column: Mapping[str, Any], what: str) -> str:
    """`time column 'x' (split.strategy is temporal_split; the dataset has 'X', another spelling)`."""
    notes = ["split.strategy is temporal_split"] if what == "time column" else []
    notes += [f"the dataset has {', '.join(map(repr, column['look_alikes']))}, another spelling"] if column["look_alikes"] else []
    return f"{what} {column['name']!r}" + (f" ({'; '.join(notes)})" if notes else "")


def _renames(missing: list[tuple[Mapping[str, Any], str]]) -> str:
    """The remediation's first step when a look-alike stands in for a missing column."""
    renames = [f"{c!r} renamed to {column['name']!r}" for column, _ in missing for c in column["look_alikes"][:1]]
    return f"a run reads these columns by their exact names: ask the operator to re-import the data with {' and '.join(renames)} (mlgate data add), or " if renames else ""


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
        "the dataset lacks the " + " and the ".join(_named(c, what) for c, what in missing) + " that the standards name",
        _renames(missing) + "choose a dataset that has these columns (load_dataset lists its columns), or ask the operator to correct "
        "label.target / time_column in the standards (mlgate standards set)",
    )


def _copies(facts: Mapping[str, Any]) -> dict[str, list[str]]:
    """{"label column 'x'": [its look-alikes]} for the label and the time column where the exact
    name is present too, leaving out the look-alikes features.exclude names."""
    excluded = set(facts["config"]["features"]["exclude"])
    found = {}
    for key, what in (("label", "label column"), ("time_column", "time column")):
        column = facts["columns"][key]
        left = [c for c in column["look_alikes"] if c not in excluded]
        if column["present"] and left:
            found[f"{what} {column['name']!r}"] = left
    return found


@rule(
    "data.no_label_or_time_look_alike",
    source="issue 9 item 4: a copy of the label under another spelling leaks it into the features",
    description=(
        "Beside the label (and the standards' time column) the dataset has no other column with its column_key "
        "(`Loan_Status`, `loan_status ` beside `loan_status`) unless features.exclude names it; such a column is never a feature."
    ),
)
def no_label_or_time_look_alike(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    copies = _copies(facts)
    if not copies:
        return Decision.allow("data.no_label_or_time_look_alike", "no other spelling of the label or the time column among the columns")
    listed = "; ".join(f"{', '.join(map(repr, cs))} beside the {what}" for what, cs in copies.items())
    names = [c for cs in copies.values() for c in cs]
    return Decision.deny(
        "data.no_label_or_time_look_alike",
        f"the dataset has {listed}: the same name in another spelling (case, spaces, full-width or zero-width characters), "
        "most likely a copy, which as a feature would hand the model its label or its ordering",
        f"ask the operator to drop or rename {names} at import (mlgate data add); or, when such a column is other data, "
        f"name it in features.exclude (propose_config_change, or this run's config) exactly as the dataset spells it: "
        f"{json.dumps(names)} in JSON escapes. An entry matches one column exactly, never normalised, so each copy is "
        "named on its own; a name with a control character can only be dropped or renamed at import. Either way it is never a feature",
    )


@rule(
    "data.column_names",
    source="the import's column-name rule (policies/column_names.py), for data imported before it",
    description=(
        "Every column name of the dataset follows the column-name rule the import applies: data imported before "
        "the rule existed may hold a name with a control or bidi character that could forge or hide text."
    ),
)
def column_names_follow_the_rule(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    refused = refused_names(str(c) for c in facts["dataset_columns"])
    if not refused:
        return Decision.allow("data.column_names", "every column name follows the column-name rule")
    listed = "; ".join(f"column {position}, {json.dumps(name[:60])}: {problem}" for position, name, problem in refused[:5])
    return Decision.deny(
        "data.column_names",
        f"the dataset has {len(refused)} column name(s) the import would now refuse ({listed})",
        "ask the operator to rename these columns in the data file and import it again (mlgate data add), then use the new dataset hash",
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
