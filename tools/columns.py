"""Which of the columns the standards name a dataset really has (pure).

The standards name a label, a time column, PII columns and protected attributes; a dataset is
whatever the operator imported. This report is what run_experiment's rules decide on before any
training (a missing label is denied, never a KeyError mid-run) and what load_dataset shows, so a
named column that is absent is always reported, never silently dropped.

PII columns and protected attributes are matched by policies/data.py column_key, as masking,
feature selection and the training rules match them: `Email `, `ｅｍａｉｌ` are the standards'
`email`, `Ｇｅｎｄｅｒ` and `gen\u200bder` are `gender`. Such a name is present, and `matched`
names the dataset column behind it where the spelling differs. When several columns share a
name's key (`gender` and `Gender` are both legal headers), the exact spelling wins, else the
first in dataset order (policies/data.py named_columns, as tools/fairness.py slices it);
`other_spellings` lists the rest, and a warning does for protected attributes.

The label and the time column stay exact: a run reads them by their literal name (the label's
values are its truth, the time column orders the temporal split). A look-alike is never taken for
them silently: `look_alikes` lists it, and a warning says to rename it at import or to name it
exactly, or, next to the exact column, that it is never a feature and that runs are denied
(data.no_label_or_time_look_alike, policies/columns.py) until it is dropped or renamed at import
or named in features.exclude.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.data import named_columns

KINDS = (("pii_columns", "PII columns"), ("protected_attributes", "protected attributes"))


def _exact(name: Any, columns: list[str]) -> dict[str, Any]:
    """`{name, present, look_alikes}`: present only under `name` itself."""
    if not name:
        return {"name": name, "present": False, "look_alikes": []}
    return {"name": name, "present": name in columns, "look_alikes": [c for c in named_columns(columns, name) if c != name]}


def _by_key(names: Iterable[Any], columns: list[str]) -> dict[str, Any]:
    """`{present, absent}` by column_key, the `matched` column of each name spelled otherwise in
    the data, and the `other_spellings` of names more than one column has."""
    found = {str(n): named_columns(columns, n) for n in names}
    return {
        "split": {"present": [n for n, cs in found.items() if cs], "absent": [n for n, cs in found.items() if not cs]},
        "matched": {n: cs[0] for n, cs in found.items() if cs and cs[0] != n},
        "other_spellings": {n: cs[1:] for n, cs in found.items() if len(cs) > 1},
    }


def column_report(columns: Iterable[Any], standards: Mapping[str, Any], target: str | None = None) -> dict[str, Any]:
    """`{label, time_column, pii_columns, protected_attributes, matched, other_spellings, warnings}`.

    `target` is the run's label column (experiment.yaml data.target); the standards' label.target
    when omitted. Each single column is `{name, present, look_alikes}`; each list is `{present,
    absent}`; `matched` and `other_spellings` are keyed by list, then by the standards' name.
    """
    have = [str(c) for c in columns]
    named = {key: _by_key(standards.get(key) or [], have) for key, _ in KINDS}
    report = {
        "label": _exact(target or (standards.get("label") or {}).get("target"), have),
        "time_column": _exact(standards.get("time_column"), have),
        **{key: found["split"] for key, found in named.items()},
        "matched": {key: found["matched"] for key, found in named.items()},
        "other_spellings": {key: found["other_spellings"] for key, found in named.items()},
    }
    report["warnings"] = _warnings(report)
    return report


def _single_warnings(column: Mapping[str, Any], what: str, remedy: str) -> list[str]:
    name, look_alikes = column["name"], column["look_alikes"]
    if column["present"]:
        return [f"{look_alikes} look like the {what} {name!r} but are other columns: they are never features, and run_experiment is denied (data.no_label_or_time_look_alike) until they are dropped or renamed at import or named in features.exclude"] if look_alikes else []
    if look_alikes:
        return [f"the {what} {name!r} is not in the dataset; {', '.join(map(repr, look_alikes))} looks like it — rename it at import or {remedy}"]
    return [f"the {what} {name!r} is not in the dataset"]


def _warnings(report: Mapping[str, Any]) -> list[str]:
    warnings = _single_warnings(report["label"], "label column", "set data.target to the exact name")
    if report["time_column"]["name"]:
        warnings += _single_warnings(report["time_column"], "time column", "ask the operator to set time_column in the standards to the exact name")
    for key, what in KINDS:
        if report[key]["absent"]:
            warnings.append(f"{what} named by the standards but absent from the dataset: {report[key]['absent']}")
    for name, others in report["other_spellings"]["protected_attributes"].items():
        used = report["matched"]["protected_attributes"].get(name, name)
        warnings.append(f"the protected attribute {name!r} is in the dataset more than once: fairness slices use {used!r}, not {others}; drop or rename the others at import")
    return warnings
