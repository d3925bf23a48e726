"""load_dataset: verify a content-addressed dataset and describe it, never more raw data than a
small sample with PII masked.

The store (server/cas.py) reads each file of data/shadow/<content hash>/ once, hashes those bytes
and parses those same bytes. The rules decide on what it found: data.shadow_only (no link led
elsewhere), data.integrity (the recomputed hash is the requested one, no extra, missing, linked or
changed file), data.registered (an operator imported it with `mlgate data add`: the dataset registry
holds it and the audit chain holds the import record) and data.pii_masked (every PII column of
the standards is masked in the sample).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import anyio
from pydantic import AfterValidator, Field

from policies import Principal
from policies.column_names import MAX_CHARS, name_problem
from policies.data import MASK, integrity, is_pii, registered, shadow_only
from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.columns import column_report
from tools.errors import InvalidInput
from tools.listing import first_few
from tools.name_families import compact

if TYPE_CHECKING:  # numpy and pandas are imported where frames are used, so a server starts without them (tests/server/commands/test_serve_imports.py)
    import pandas as pd

MAX_DETAILED = 200  # columns one call may name: a bounded result, whatever the width of the dataset
HASH_DOC = (
    "The dataset's content hash: 64 lowercase hexadecimal characters (SHA-256 of its manifest), as printed by "
    "`mlgate data add` and listed by the mlgate://datasets resource. Paths are not accepted."
)


def _column_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ValueError(f"a column's exact name as `columns` lists it, 1 to {MAX_CHARS} characters; {problem}")
    return name


ColumnName = Annotated[str, AfterValidator(_column_name)]
COLUMNS_DOC = (
    "Columns to detail (dtype, nulls, range, sample values), by their exact names as `columns` lists them. "
    "Omitted: every column when there are at most the policy's detail_columns (50), else the first 50 and the "
    "label; `detailed_columns` says how many were left out. Every column is always named in `columns` (over 200 "
    "columns: those in no numbered family, the rest in `columns_families`, each name prefix + number + suffix)."
)


class LoadDatasetInput(StrictInput):
    content_hash: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$", description=HASH_DOC)
    columns: list[ColumnName] | None = Field(None, min_length=1, max_length=MAX_DETAILED, description=COLUMNS_DOC)


class Inspection(Protocol):
    def facts(self) -> dict[str, Any]:
        """requested, location, symlinked, recomputed, problems, files, registration (see policies/data.py)."""
        ...


class Loaded(Protocol):
    frame: pd.DataFrame
    manifest: dict[str, Any]


class DatasetStore(Protocol):
    """The CAS port (server/cas.py CasStore)."""

    def inspect(self, content_hash: str, max_files: int | None = None) -> Inspection:
        """Read and hash the dataset directory once. Raises InvalidInput, NotFound."""
        ...

    def open(self, inspection: Inspection) -> Loaded:
        """Parse the inspected bytes. Raises IntegrityError unless they verified."""
        ...


# --- pure descriptions of a frame -------------------------------------------------------------


def _number(value: Any) -> int | float | str | None:
    """A JSON-safe min/max: ints stay ints, non-finite floats become their names."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, (int, float)) else str(value)


def value_ranges(frame: pd.DataFrame, pii_columns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{column: {min, max}} of numeric, non-boolean, non-PII columns (nulls ignored)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype  # noqa: PLC0415 - see the imports above

    pii = list(pii_columns)
    ranges: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        series = frame[column]
        if is_pii(column, pii) or not is_numeric_dtype(series) or is_bool_dtype(series):
            continue
        values = series.dropna()
        ranges[str(column)] = {"min": _number(values.min()) if len(values) else None, "max": _number(values.max()) if len(values) else None}
    return ranges


# A text column whose values are nearly all numbers: a placeholder ("-", "n.a.", "?") made the
# reader take every amount for text, and a model then treats each one as a category.
MIN_NUMERIC_SHARE = 0.9
MAX_SHOWN_TOKENS, MAX_TOKEN_CHARS, SAMPLE = 3, 20, 1000
DIGIT_GROUPS = r"(?<=\d)[,'_ ](?=\d{3}(?!\d))"  # 1,234.50 / 1'234 / 1 234: a thousands separator between digits


def numbers_read_as_text(frame: pd.DataFrame, pii_columns: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{column: {numeric_share, rows_not_numbers, not_numbers, thousands_separators}} for non-PII
    text columns whose values are at least MIN_NUMERIC_SHARE numbers (digit groups such as
    1,234.50 counted as numbers) but are read as text: some values are not numbers (the most
    frequent 3 shown, cut at 20 characters) or carry thousands separators."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype  # noqa: PLC0415 - see the imports above

    pii, found = list(pii_columns), {}
    for column in frame.columns:
        series = frame[column]
        if is_pii(column, pii) or is_numeric_dtype(series) or is_bool_dtype(series) or series.isna().all():
            continue
        text = series.dropna().astype(str).str.strip()
        if _as_numbers(text.head(SAMPLE))[0].mean() < MIN_NUMERIC_SHARE / 2:
            continue  # categories, names, dates: decided on a sample, so a wide table of them costs little
        numeric, grouped = _as_numbers(text)
        share = float(numeric.mean())
        if share >= MIN_NUMERIC_SHARE and (share < 1 or grouped.any()):
            tokens = text[~numeric].value_counts().head(MAX_SHOWN_TOKENS).index
            found[str(column)] = {"numeric_share": round(share, 6), "rows_not_numbers": int((~numeric).sum()),
                                  "not_numbers": [t[:MAX_TOKEN_CHARS] for t in tokens], "thousands_separators": int(grouped.sum())}  # fmt: skip
    return found


def _as_numbers(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(which values are numbers, which of those only once digit-group separators are dropped)."""
    import pandas as pd  # noqa: PLC0415 - see the imports above

    plain = text.str.replace(DIGIT_GROUPS, "", regex=True)
    numeric = pd.to_numeric(plain, errors="coerce").notna()
    return numeric, numeric & (plain != text)


# A column of dates (other than the standards' time column) read as text or as date objects: the
# training child takes each date for a category and one-hot encodes the most frequent ones, so
# "how long ago" is lost and dates of a later test window match no category at all.
DATE_TEXT = (
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"  # ISO 8601
    r"|^\d{1,2}[/.\-]\d{1,2}[/.\-](\d{4}|\d{2})( \d{2}:\d{2}(:\d{2})?)?$"  # 13/02/2020, 02.13.20 (no backreference: pyarrow's RE2)
    r"|^[A-Za-z]{3,9}[- ]\d{4}$|^\d{4}-\d{2}$"  # Mar-2018, 2018-03
)


def dates_read_as_text(frame: pd.DataFrame, pii_columns: Iterable[str], time_column: str | None) -> dict[str, dict[str, Any]]:
    """{column: {date_share, distinct_values}} for non-PII columns other than the time column whose
    values are at least MIN_NUMERIC_SHARE dates (text in a date form, or date/datetime values)."""
    from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype  # noqa: PLC0415 - see the imports above

    pii, found = list(pii_columns), {}
    for column in frame.columns:
        if str(column) == time_column or is_pii(column, pii) or is_numeric_dtype(frame[column]):
            continue
        series = frame[column].dropna()
        if series.empty:
            continue
        share = 1.0 if is_datetime64_any_dtype(series) else _date_share(series.head(SAMPLE))
        if share >= MIN_NUMERIC_SHARE:
            found[str(column)] = {"date_share": round(share, 6), "distinct_values": int(series.nunique())}
    return found


def _date_share(values: pd.Series) -> float:
    """The share of values that are dates: date objects, or text in one of DATE_TEXT's forms."""
    import datetime  # noqa: PLC0415 - only this check reads dates

    objects = values.map(lambda v: isinstance(v, (datetime.date, datetime.datetime)))
    text = values[~objects].astype(str).str.strip()
    return float((objects.sum() + text.str.match(DATE_TEXT).sum()) / len(values))


def class_balance(frame: pd.DataFrame, label: Mapping[str, Any], max_classes: int) -> dict[str, Any]:
    """Counts and shares of the label's values (the most frequent `max_classes`), and its nulls.
    Shares are of the labelled rows, as positive_share is: unlabeled rows are `missing`, not a class."""
    target = label.get("target")
    if not target or target not in frame.columns:
        return {"label": target, "present": False}
    series = frame[target]
    counts = series.value_counts(dropna=True)
    labelled = int(counts.sum())
    shown = counts.head(max_classes)
    return {
        "label": target,
        "present": True,
        "positive_class": label.get("positive_class"),
        "counts": {str(k): int(v) for k, v in shown.items()},
        "shares": {str(k): round(int(v) / labelled, 6) for k, v in shown.items()} if labelled else {},
        "distinct_values": int(len(counts)),
        "missing": int(series.isna().sum()),
        **positive_share(series, label.get("positive_class")),
    }


def positive_share(series: pd.Series, positive_class: Any) -> dict[str, Any]:
    """How many labelled rows are positive: the label is any of the positive values (one or a list,
    compared as text as run_experiment binarises it)."""
    from tools.labels import is_positive, positive_values  # noqa: PLC0415 - see the imports above

    if positive_class is None:
        return {}
    values = {v.strip() for v in positive_values(positive_class)}
    labelled = int(series.notna().sum())
    count = int(is_positive(series, positive_class).sum())
    return {"positive_values": sorted(values), "positive_count": count, "positive_share": round(count / labelled, 6) if labelled else None}


def quality_checks(frame: pd.DataFrame, standards: Mapping[str, Any], max_classes: int, detailed: list[str] | None = None) -> dict[str, Any]:
    """Nulls per column and numeric ranges (PII excluded) of the `detailed` columns (default: all);
    over the whole frame: duplicate rows, numbers read as text, class balance."""
    shown = frame if detailed is None else frame[detailed]
    return {
        "null_counts": {str(c): int(n) for c, n in shown.isna().sum().items()},
        "ranges": value_ranges(shown, standards.get("pii_columns") or []),
        "duplicate_rows": int(frame.duplicated().sum()),
        # Shown so an operator can re-import with those placeholders as empty cells.
        "numbers_read_as_text": numbers_read_as_text(frame, standards.get("pii_columns") or []),
        # Shown so an agent derives a number from each (src/features.py) instead of training on dates as categories.
        "dates_read_as_text": dates_read_as_text(frame, standards.get("pii_columns") or [], standards.get("time_column")),
        "class_balance": class_balance(frame, standards.get("label") or {}, max_classes),
        # Columns the standards name that this dataset lacks are shown here, before any run.
        "standards_columns": column_report(frame.columns, standards),
    }


def masked_sample(frame: pd.DataFrame, pii_columns: Iterable[str], rows: int) -> list[dict[str, Any]]:
    """The first `rows` rows as JSON records, every PII column (any case) replaced by MASK."""
    pii = list(pii_columns)
    head = frame.head(max(rows, 0)).copy()
    for column in head.columns:
        if is_pii(column, pii):
            head[column] = MASK
    return json.loads(head.to_json(orient="records", date_format="iso"))


# --- gather / execute -------------------------------------------------------------------------


def _verified(facts: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    return all(check(facts, config).allowed for check in (shadow_only, integrity, registered))


def collect(store: DatasetStore, content_hash: str, config: Mapping[str, Any], principal: Principal, wanted: list[str] | None = None) -> dict[str, Any]:
    """Facts for policies/data.py. Nothing is parsed unless the bytes verified and the dataset is
    registered. Raises
    InvalidInput (malformed hash), NotFound (no such dataset), IntegrityError (unparseable bytes)."""
    limits, standards = config["policy"]["datasets"], config["standards"]
    inspection = store.inspect(content_hash, int(limits["max_files"]))
    facts: dict[str, Any] = {"principal": principal, **inspection.facts(), "columns": [], "sample": [], "manifest": None}
    if not _verified(facts, config):
        return facts
    loaded = store.open(inspection)
    pii = standards.get("pii_columns") or []
    detailed = columns_to_detail(loaded.frame, wanted, limits, standards)
    facts.update(
        manifest=loaded.manifest,
        columns=loaded.manifest["columns"],
        detailed=detailed,
        quality=quality_checks(loaded.frame, standards, int(limits["max_classes"]), detailed),
        sample=masked_sample(loaded.frame[detailed], pii, int(limits["sample_rows"])),
        masked_columns=[c for c in detailed if is_pii(c, pii)],
    )
    return facts


def columns_to_detail(frame: pd.DataFrame, wanted: list[str] | None, limits: Mapping[str, Any], standards: Mapping[str, Any]) -> list[str]:
    """detailed_columns of a loaded frame under the policy's detail_columns and the standards' label."""
    return detailed_columns(list(frame.columns), wanted, int(limits["detail_columns"]), (standards.get("label") or {}).get("target"))


def detailed_columns(columns: list[str], wanted: list[str] | None, limit: int, label: str | None) -> list[str]:
    """The columns a call details: those it names (in the dataset's order), else all up to `limit`,
    else the first `limit` and the label. Raises InvalidInput for a name the dataset lacks."""
    if wanted is not None:
        unknown = [c for c in dict.fromkeys(wanted) if c not in columns]
        if unknown:
            raise InvalidInput(f"the dataset has no column {first_few(unknown)}", "name columns exactly as `columns` lists them (a load without `columns` shows the list)", rule_id="input.columns")
        named = set(wanted)
        return [c for c in columns if c in named]
    if len(columns) <= limit:
        return columns
    return [c for i, c in enumerate(columns) if i < limit or c == label]


async def gather(request: LoadDatasetInput, ctx: CallContext) -> dict[str, Any]:
    """Hashing and parsing run in a worker thread: large files must not stall other calls."""
    return await anyio.to_thread.run_sync(collect, ctx.ports.cas, request.content_hash, ctx.config, ctx.principal, request.columns)


async def execute(request: LoadDatasetInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    ctx.audit_refs["content_hash"] = request.content_hash
    return {
        **detailed_manifest(facts["manifest"], facts["detailed"]),
        "quality": facts["quality"],
        "sample": facts["sample"],
        "sample_rows": len(facts["sample"]),
        "masked_columns": facts["masked_columns"],
        "mask": MASK,
    }


def detailed_manifest(manifest: Mapping[str, Any], detailed: list[str]) -> dict[str, Any]:
    """The manifest with every column named (compactly past MAX_LISTED: tools/name_families.py), dtypes
    of the detailed ones, and how many those are."""
    note: dict[str, Any] = {"count": len(detailed), "of": len(manifest["columns"])}
    if len(detailed) < len(manifest["columns"]):
        note["more"] = "dtypes, nulls, ranges and the sample cover these columns only: load_dataset with columns: [exact names from `columns`] details others"
    return {**manifest, **compact("columns", manifest["columns"]), "dtypes": {c: manifest["dtypes"][c] for c in detailed}, "detailed_columns": note}


_RULES = load_all()
SPEC = ToolSpec(
    name="load_dataset",
    title="Load a dataset",
    description=(
        "Verify a dataset an operator imported (`mlgate data add`) by its content hash (every byte re-hashed) and return its manifest: "
        "content and schema hashes, files, rows, columns, dtypes, quality checks (nulls per column, numeric "
        "ranges, duplicate rows, class balance of the label) and a few sample rows with PII columns masked; on a wide dataset "
        "those cover the first 50 columns and the label unless `columns` names others. "
        "Raw data beyond that sample is never returned. Read-only."
    ),
    input_model=LoadDatasetInput,
    rules=tuple(_RULES[r] for r in ("role.known", "data.shadow_only", "data.integrity", "data.registered", "data.pii_masked")),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
