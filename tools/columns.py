"""Which of the columns the standards name a dataset really has (pure).

The standards name a label, a time column, PII columns and protected attributes; a dataset is
whatever the operator imported. This report is what run_experiment's rules decide on before any
training (a missing label is denied, never a KeyError mid-run) and what load_dataset shows, so a
named column that is absent is always reported, never silently dropped. A PII column is present
in any case, with stray spaces or in a look-alike spelling (`Email `, `ｅｍａｉｌ` are the
standards' `email`), as policies/data.py is_pii matches it everywhere (masking, features, rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.data import is_pii


def _split(names: Iterable[str], columns: set[str]) -> dict[str, list[str]]:
    named = [str(n) for n in names]
    return {"present": [n for n in named if n in columns], "absent": [n for n in named if n not in columns]}


def _split_pii(names: Iterable[str], columns: set[str]) -> dict[str, list[str]]:
    named = [str(n) for n in names]
    found = [n for n in named if any(is_pii(c, [n]) for c in columns)]
    return {"present": found, "absent": [n for n in named if n not in found]}


def column_report(columns: Iterable[Any], standards: Mapping[str, Any], target: str | None = None) -> dict[str, Any]:
    """`{label, time_column, pii_columns, protected_attributes, warnings}` for a dataset's columns.

    `target` is the run's label column (experiment.yaml data.target); the standards' label.target
    when omitted. Each single column is `{name, present}`; each list is `{present, absent}`.
    """
    have = {str(c) for c in columns}
    label = target or (standards.get("label") or {}).get("target")
    time_column = standards.get("time_column")
    report = {
        "label": {"name": label, "present": bool(label) and label in have},
        "time_column": {"name": time_column, "present": bool(time_column) and time_column in have},
        "pii_columns": _split_pii(standards.get("pii_columns") or [], have),
        "protected_attributes": _split(standards.get("protected_attributes") or [], have),
    }
    report["warnings"] = _warnings(report)
    return report


def _warnings(report: Mapping[str, Any]) -> list[str]:
    warnings = []
    if not report["label"]["present"]:
        warnings.append(f"the label column {report['label']['name']!r} is not in the dataset")
    if report["time_column"]["name"] and not report["time_column"]["present"]:
        warnings.append(f"the time column {report['time_column']['name']!r} is not in the dataset")
    for key, what in (("pii_columns", "PII columns"), ("protected_attributes", "protected attributes")):
        if report[key]["absent"]:
            warnings.append(f"{what} named by the standards but absent from the dataset: {report[key]['absent']}")
    return warnings
