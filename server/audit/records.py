"""The audit record format, the anchor file, and reading a chain file from its end."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from server.files import write_atomic
from tools.errors import IntegrityError

GENESIS_HASH = "0" * 64
CHAIN_FIELDS = ("seq", "time", "prev", "hash")
RECOVERED_KIND = "recovered_torn_tail"
# The longest line a record may take, newline included. Records hold ids, hashes and short texts (a
# few KiB); the bound lets every reader refuse a longer line after reading at most this much of it,
# so a junk line of any length (a sparse terabyte) costs no memory and no full read.
MAX_RECORD_BYTES = 2**20
_CHUNK = 65536
_REMEDIATION = (
    "run `mlgate audit verify --workspace DIR` to find the first bad record; restore the audit files "
    "from a backup or preserve them as evidence; mlgate does not append to a damaged chain"
)


@dataclass(frozen=True)
class AuditOptions:
    fsync_every: int = 32
    fsync_interval_ms: int = 200
    lock_timeout_ms: int = 5000
    tail_default: int = 50
    tail_max: int = 1000

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AuditOptions:
        """Options from the `audit:` section of configs/policy.yaml. Raises ValueError if not positive ints."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in config.items() if k in names}
        bad = sorted(k for k, v in values.items() if type(v) is not int or v < 1)
        if bad:
            raise ValueError(f"audit options must be positive integers: {', '.join(bad)}")
        return cls(**values)


@dataclass(frozen=True)
class Head:
    """The last record of a chain: its seq, hash, and the byte offset just past its newline."""

    seq: int
    hash: str
    offset: int


GENESIS = Head(-1, GENESIS_HASH, 0)


def sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.stem}.{suffix}")


def integrity_error(problem: str, reason: str) -> IntegrityError:
    return IntegrityError(reason, _REMEDIATION, rule_id=f"audit.{problem}")


# --- record format -------------------------------------------------------------------------------


def check_json(value: Any, where: str = "record") -> None:
    """Raises TypeError/ValueError naming the place (never the value) of anything not plain JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: non-finite float is not deterministic JSON")
    if value is None or isinstance(value, (str, bool, int, float)):
        return
    if isinstance(value, (list, tuple)):
        items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
    elif isinstance(value, Mapping):
        _check_keys(value, where)
        items = [(f"{where}.{key}", item) for key, item in value.items()]
    else:
        raise TypeError(f"{where}: value of type {type(value).__name__} is not JSON-serialisable")
    for place, item in items:
        check_json(item, place)


def _check_keys(mapping: Mapping[Any, Any], where: str) -> None:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"{where}: key of type {type(key).__name__} (keys must be str)")


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the record without its `hash` field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def loads(raw: bytes | str) -> Any:
    """json.loads for bytes anyone may have written: nesting past the interpreter's recursion limit
    (a 200 KB line of `[[[[`) raises ValueError like any other bad JSON, not RecursionError."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def bounded_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Every line of `stream`, one per line of the file so line numbers stay seqs; a line longer
    than any record is yielded as its first MAX_RECORD_BYTES + 1 bytes (no newline: it never
    parses), the rest read past in chunks and never held."""
    while line := stream.readline(MAX_RECORD_BYTES + 1):
        if len(line) > MAX_RECORD_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(_CHUNK)) and not rest.endswith(b"\n"):
                pass
        yield line


def read_small(path: Path, limit: int = MAX_RECORD_BYTES) -> bytes:
    """A small file anyone may have written (the anchor): at most `limit` + 1 bytes of it, so a
    sparse terabyte in its place costs no memory. Raises OSError."""
    with path.open("rb") as file:
        return file.read(limit + 1)


def parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a well-formed line (with newline); otherwise (record or None, what is wrong)."""
    try:
        record = loads(raw)
    except ValueError:
        return None, "the line is not valid JSON"
    if not isinstance(record, dict):
        return None, "the line is not a JSON object"
    if type(record.get("seq")) is not int or not all(isinstance(record.get(k), str) for k in CHAIN_FIELDS[1:]):
        return None, "the line lacks seq, time, prev or hash"
    try:
        if canonical(record) + b"\n" != raw:
            return record, "the line is not byte-identical to its canonical form"
    except (ValueError, RecursionError):
        return record, "the line holds values that are not canonical JSON"
    if record_hash(record) != record["hash"]:
        return record, "the hash does not match the record's contents"
    return record, None


# --- reading files backwards ---------------------------------------------------------------------


def rfind_newline(fd: int, before: int, within: int = MAX_RECORD_BYTES) -> int:
    """Offset of the last newline strictly before `before`, or -1 when there is none. Looks back
    at most `within` bytes: raises IntegrityError when they hold none and the file goes further back."""
    pos, low_end = before, max(0, before - within)
    while pos > low_end:
        low = max(low_end, pos - _CHUNK)
        found = os.pread(fd, pos - low, low).rfind(b"\n")
        if found >= 0:
            return low + found
        pos = low
    if low_end > 0:
        raise integrity_error("overlong_line", f"the {within} bytes before byte {before} hold no line end: longer than any record")
    return -1


def line_ending_at(fd: int, end: int) -> bytes:
    """The complete line (with its newline) whose newline is the byte before `end`. Raises
    IntegrityError when that line is longer than any record."""
    start = rfind_newline(fd, end - 1) + 1
    return os.pread(fd, end - start, start)


def complete_end(fd: int, size: int) -> int:
    """Offset just past the last newline of the first `size` bytes (0 if none). Raises
    IntegrityError when the bytes after it are more than any record (no write cut off by a crash)."""
    return rfind_newline(fd, size) + 1


def _tail_lines(fd: int, n: int) -> list[bytes]:
    lines: list[bytes] = []
    end = complete_end(fd, os.fstat(fd).st_size)
    while end > 0 and len(lines) < n:
        line = line_ending_at(fd, end)
        lines.append(line)
        end -= len(line)
    return lines[::-1]


def read_tail(path: Path | str, n: int) -> list[dict[str, Any]]:
    """The last `n` complete records (a torn last line is skipped; an unreadable line is marked)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        lines = _tail_lines(fd, n)
    finally:
        os.close(fd)
    return [_tail_record(line) for line in lines]


def _tail_record(line: bytes) -> dict[str, Any]:
    record, problem = parse_line(line)
    if record is None:
        return {"unreadable": True, "problem": problem, "bytes": len(line)}
    return record if problem is None else {**record, "problem": problem}


# --- the anchor ----------------------------------------------------------------------------------


def read_anchor(path: Path) -> Head | None:
    """The anchored head, or None when there is no anchor file. Raises IntegrityError if unreadable."""
    try:
        data = loads(read_small(path))
        return _anchored_head(data["seq"], data["hash"], data["offset"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise integrity_error("anchor_unreadable", f"the audit anchor {path.name} is not readable ({type(exc).__name__})") from None


def _anchored_head(seq: Any, hash_: Any, offset: Any) -> Head:
    """A Head from an anchor's fields: whole numbers in range (a float such as 1e999 or a negative
    offset is refused) and a hash string. Raises ValueError/TypeError."""
    if type(seq) is not int or type(offset) is not int or not isinstance(hash_, str):
        raise TypeError("the anchor's seq and offset must be integers and its hash a string")
    if seq < GENESIS.seq or offset < 0 or (seq == GENESIS.seq) != (offset == 0):
        raise ValueError("the anchor's seq or offset is out of range")
    return Head(seq, hash_, offset)


def write_anchor(path: Path, head: Head, signed: Mapping[str, Any] | None = None) -> None:
    """Anchors `head`; `signed` is its signed head (server/audit/signing.py) when a key is in use."""
    anchor: dict[str, Any] = {"seq": head.seq, "hash": head.hash, "offset": head.offset}
    if signed is not None:
        anchor["signed"] = dict(signed)
    write_atomic(path, canonical(anchor) + b"\n", mode=0o600)


def read_anchor_signature(path: Path) -> dict[str, Any] | None:
    """The signed head stored with the anchor, or None (no anchor, unreadable, or unsigned)."""
    try:
        signed = loads(read_small(path)).get("signed")
    except (OSError, ValueError, AttributeError):
        return None
    return signed if isinstance(signed, dict) else None
