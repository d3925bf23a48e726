"""Dataset files into one table: the reader behind the schema hash (server/cas.py defines both
hashes) and the files it refuses although pandas could parse them.

A CSV header that names a column twice is refused: pandas would rename the second `email` to
`email.1`, which no PII name, feature exclusion or sample mask of the standards matches. So is a
CSV whose rows all have one more field than its header (a trailing comma on each line): pandas
would read the first field as an index and shift every column onto its neighbour's name. So is a
CSV separated by semicolons, tabs or pipes (a European export, `a;b;c` with decimal commas): pandas
would read one column named `a;b;c`, which no label or standards name matches. So is a
Parquet column whose values are no table cells (lists, structs, maps, unions, raw bytes): no
quality check, sample or model can use one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tools.listing import first_few

# pandas and pyarrow are imported where a file is parsed: a server starts without them
# (tests/server/commands/test_serve_imports.py).
if TYPE_CHECKING:
    import pandas as pd

    from server.cas import StoredFile

# Separators of CSV exports that are not commas (semicolons: spreadsheets in locales with a decimal comma).
OTHER_SEPARATORS = (";", "\t", "|")
READER: dict[str, dict[str, Any]] = {
    "csv": {"sep": ",", "encoding": "utf-8", "low_memory": False},
    "parquet": {"engine": "pyarrow"},
}


def dtypes_of(frame: pd.DataFrame) -> dict[str, str]:
    return {str(column): str(dtype) for column, dtype in frame.dtypes.items()}


def schema_hash(frame: pd.DataFrame) -> str:
    pairs = sorted([name, dtype] for name, dtype in dtypes_of(frame).items())
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()


def _csv_head(data: bytes) -> tuple[list[str], int | None]:
    """The header's names and the field count of the first data row (None: no data row), split as
    pandas splits them: UTF-8 with its BOM dropped, blank lines skipped. ([], None) when the csv
    module cannot split them (a field over its size limit): pandas alone decides then."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    try:
        rows = (row for row in csv.reader(text) if row)
        header, first = next(rows, []), next(rows, None)
    except csv.Error:
        return [], None
    return header, None if first is None else len(first)


def _other_separator(header: list[str]) -> str | None:
    """The separator a one-column header is really split by, or None."""
    if len(header) != 1:
        return None
    return next((sep for sep in OTHER_SEPARATORS if len(header[0].split(sep)) > 1), None)


def _csv_refusal(data: bytes) -> str | None:
    header, first = _csv_head(data)
    separator = _other_separator(header)
    if separator:
        name = header[0] if len(header[0]) <= 60 else header[0][:60] + "..."
        return (f"its header reads as one column named {json.dumps(name)}: the file is separated by {separator!r}; "
                "mlgate reads comma-separated CSV with a decimal point: export it so, or as Parquet")
    # Blank names are left to pandas ("Unnamed: 1", "Unnamed: 2"): no standards name can match them.
    repeated = sorted({n for n in header if n.strip() and header.count(n) > 1})
    if repeated:
        return f"its header names the columns {repeated[:5]} more than once; give each column its own name"
    if first == len(header) + 1:
        # pandas would take each row's first field for an index, shifting every column onto the next one's name.
        return "every row has one more field than its header (a trailing comma?); remove it or name the extra column"
    return None


def _not_cells(data: bytes) -> list[str]:
    """`name (arrow type)` of each Parquet column whose values are nested or raw bytes."""
    import pyarrow as pa  # noqa: PLC0415 - see the imports above
    import pyarrow.parquet as pq  # noqa: PLC0415

    found = []
    for column in pq.read_schema(io.BytesIO(data)):
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            found.append(f"column {column.name!r} ({kind})")
    return found


def _refusal(kind: str, data: bytes) -> str | None:
    """Why a file the reader can parse is still no dataset file (module docstring), or None."""
    if kind == "csv":
        return _csv_refusal(data)
    not_cells = _not_cells(data)
    return f"it has columns of nested values or raw bytes: {', '.join(not_cells[:5])}; store flat numbers, booleans, text or dates" if not_cells else None


def _parse_one(stored: StoredFile) -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415 - see the imports above

    kind, data = stored.path.rsplit(".", 1)[-1], stored.data or b""
    try:
        refusal = _refusal(kind, data)
        frame = pd.read_csv(io.BytesIO(data), **READER["csv"]) if kind == "csv" else pd.read_parquet(io.BytesIO(data), **READER["parquet"])
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not a readable dataset file"
        raise ValueError(f"{stored.path} cannot be read as {kind.upper()} ({type(exc).__name__}: {str(exc)[:160]})") from None
    if refusal:
        raise ValueError(f"{stored.path}: {refusal}")
    if kind == "csv":
        return frame
    # A stored non-default index (e.g. a named id column) is data: keep it as columns.
    return _decimals_as_numbers(frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index(), data)


def _decimals_as_numbers(frame: pd.DataFrame, data: bytes) -> pd.DataFrame:
    """Parquet decimal columns (amounts from a database export) as float64: pandas reads them as
    Python Decimal objects, which training would take for categories, one per amount."""
    import pandas as pd  # noqa: PLC0415 - see the imports above
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    decimals = [c.name for c in pq.read_schema(io.BytesIO(data)) if pa.types.is_decimal(c.type) and c.name in frame.columns]
    for name in decimals:
        frame[name] = pd.to_numeric(frame[name]).astype("float64")
    return frame


def _difference(first: dict[str, str], other: dict[str, str]) -> str:
    """What differs, by column (names JSON-escaped, at most 5 of each kind): every file of a
    dataset has the first file's columns, in its order, with its dtypes."""
    missing, extra = [c for c in first if c not in other], [c for c in other if c not in first]
    retyped = [f"{json.dumps(c)} is {other[c]} there, {first[c]} in the first file" for c in first if c in other and other[c] != first[c]]
    parts = [f"it lacks {first_few(missing)}"] * bool(missing) + [f"it adds {first_few(extra)}"] * bool(extra) + retyped[:5]
    return "; ".join(parts) or "its columns are in another order than the first file's"


def read_frame(files: Sequence[StoredFile]) -> pd.DataFrame:
    """One frame from the files' bytes, in manifest order. Raises ValueError when a file cannot
    be parsed or the files' columns and dtypes differ."""
    import pandas as pd  # noqa: PLC0415 - see the imports above

    ordered = sorted(files, key=lambda f: f.path)
    if not ordered:
        raise ValueError("the dataset has no data files")
    frames = [_parse_one(f) for f in ordered]
    first = dtypes_of(frames[0])
    for stored, frame in zip(ordered[1:], frames[1:]):
        other = dtypes_of(frame)
        if list(other.items()) != list(first.items()):
            raise ValueError(f"{stored.path} has other columns or dtypes than {ordered[0].path}: {_difference(first, other)}")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
