"""Rules over a dataset read (DESIGN §3 load_dataset, §4 CAS integrity and shadow-only data).

Facts are a mapping gathered from the content-addressed store (server/cas.py `Inspection.facts`):
    requested   the content hash asked for (64 lowercase hex)
    location    where the dataset directory really is, relative to the workspace (posix)
    symlinked   true when a symlink sits on the path data/shadow/<hash>
    recomputed  SHA-256 of the manifest rebuilt from the bytes read (None when nothing was read)
    problems    [{kind, path, detail}]: symlinks, hard links, extra/missing/modified files ...
and, for load_dataset, `columns` (the dataset's columns) and `sample` (the records it returns).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

from policies.decision import Decision, rule

SOURCE = "DESIGN.md §3 load_dataset, §4 CAS integrity and shadow-only data"
SHADOW_DIR = "data/shadow"
MASK = "***"
MAX_LISTED_PROBLEMS = 5


def column_key(name: Any) -> str:
    """A column name as the standards' names are matched against it: compatibility forms folded
    (NFKC: full-width `ｅｍａｉｌ` is `email`), format characters such as zero-width spaces dropped,
    surrounding spaces stripped, case folded. `E\u200bmail ` is the standards' `email`."""
    text = unicodedata.normalize("NFKC", str(name))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip().casefold()


def is_named(column: Any, names: Iterable[str]) -> bool:
    """Whether `column` is one of the standards' `names`, by column_key."""
    return column_key(column) in {column_key(n) for n in names}


def named_columns(columns: Iterable[Any], name: Any) -> list[str]:
    """The dataset `columns` that are the standards' `name` by column_key: its exact spelling first,
    then the others in dataset order, so the first is the same column whatever else the data holds.
    A CSV header may hold both `gender` and `Gender` (only a name repeated exactly is refused)."""
    found = [str(c) for c in columns if column_key(c) == column_key(name)]
    return sorted(found, key=lambda column: column != str(name))  # stable: dataset order after the exact one


def is_pii(column: Any, pii_columns: Iterable[str]) -> bool:
    """PII matching, by column_key: a look-alike spelling of a PII name is that PII column."""
    return is_named(column, pii_columns)


def integrity_message(requested: str, problems: list[Mapping[str, Any]], recomputed: str | None) -> tuple[str, str]:
    """(reason, remediation) for a dataset whose bytes do not match its content hash."""
    details = [str(p["detail"]) for p in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        details.append(f"and {len(problems) - MAX_LISTED_PROBLEMS} more")
    if not details:
        details.append(f"the files hash to {recomputed or 'nothing readable'}, not to the requested hash")
    reason = f"dataset {requested[:12]}… fails verification: " + "; ".join(details)
    remediation = (
        f"do not use this dataset. Ask the operator to restore {SHADOW_DIR}/{requested}/ from backup, or to "
        "re-import the original files with `mlgate data add WORKSPACE FILE...` (changed bytes get a new content "
        "hash: then propose data.dataset with it). A dataset directory holds only the imported files and "
        "manifest.tsv: no symlinks, hard links, subdirectories or edits"
    )
    return reason, remediation


@rule(
    "data.shadow_only",
    source=SOURCE,
    description="A dataset is read only from data/shadow/<content hash>/ itself: no symlink on the way, no other place.",
)
def shadow_only(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    expected = PurePosixPath(SHADOW_DIR, facts["requested"])
    location = str(facts["location"])
    if facts["symlinked"] is False and ".." not in PurePosixPath(location).parts and PurePosixPath(location) == expected:
        return Decision.allow("data.shadow_only", f"read from {expected}")
    return Decision.deny(
        "data.shadow_only",
        f"the dataset directory resolves to {location}, not {expected} (a symbolic link redirects it)",
        f"datasets are read only from {SHADOW_DIR}/; ask the operator to remove the link and import the data with `mlgate data add`",
    )


@rule(
    "data.integrity",
    source=SOURCE,
    description="The SHA-256 recomputed from the bytes read equals the requested content hash, with no extra, missing, linked or changed file.",
)
def integrity(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    problems = list(facts["problems"])
    if not problems and facts["recomputed"] == facts["requested"]:
        return Decision.allow("data.integrity", f"content hash {facts['requested'][:12]}… verified")
    reason, remediation = integrity_message(facts["requested"], problems, facts["recomputed"])
    return Decision.deny("data.integrity", reason, remediation)


@rule(
    "data.pii_masked",
    source=SOURCE,
    description="Every PII column (standards pii_columns, any case) present in the data is masked in every returned sample row (of the columns the call details).",
)
def pii_masked(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    # The sample holds the columns the call detailed (facts["detailed"]; all when absent): each PII
    # one must be in every row, masked.
    pii = [c for c in facts.get("detailed") or facts["columns"] if is_pii(c, config["standards"].get("pii_columns") or [])]
    unmasked = sorted({str(c) for row in facts["sample"] for c in pii if row.get(c) != MASK})
    if not unmasked:
        return Decision.allow("data.pii_masked", f"PII columns masked: {sorted(map(str, pii))}")
    return Decision.deny(
        "data.pii_masked",
        f"sample rows would show PII columns unmasked: {unmasked}",
        "report this to the operator: the server must mask PII before returning a sample",
    )


REGISTERED_REMEDIATION = (
    "a directory under data/shadow is not a dataset until an operator imports its source files with "
    "`mlgate data add WORKSPACE FILE...`, which records the import in the audit chain and the dataset registry; "
    "ask the operator to import the file, then use the content hash it prints. Do not create, copy or edit "
    "anything under data/shadow or the state directory"
)


@rule(
    "data.registered",
    source="issue 8 item 4; DESIGN.md §4 CAS integrity and shadow-only data",
    description="The dataset was imported by an operator (`mlgate data add`): its content hash is in the dataset registry and the audit chain holds the matching import record.",
)
def registered(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    registration = facts.get("registration")
    registration = registration if isinstance(registration, Mapping) else {}
    short = f"{str(facts['requested'])[:12]}…"
    if registration.get("registered") is True and registration.get("audited") is True:
        return Decision.allow("data.registered", f"dataset {short} was imported by {registration.get('imported_by') or 'an operator'}")
    detail = registration.get("detail") or "it is not in the dataset registry"
    return Decision.deny("data.registered", f"dataset {short} was not imported by an operator: {detail}", REGISTERED_REMEDIATION)
