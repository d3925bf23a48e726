"""The dataset registry: the content hashes an operator imported with `mlgate data add`.

A directory under data/shadow proves only that its bytes match its name; anyone who can write the
workspace can make one (by hand, or by copying one from another workspace). What makes it a
dataset of this workspace is the import, recorded twice:

1. a `dataset_import` record in the audit chain: content hash, schema hash, rows, the imported
   files (base names, sizes, SHA-256; never the operator's paths), the importing principal and
   the credential it authenticated with (`mlgate data add` needs an operator token);
2. an entry in `<state_dir>/datasets.json` (written atomically under `<state_dir>/datasets.lock`)
   with the same fields and the cited record's `seq`, `hash` and byte offset in the chain. It is
   read only as a regular file: a symbolic link or a FIFO planted there reads as an unreadable
   registry at once (nothing registered), never followed or waited on. Nor is a file over
   `datasets.max_registry_bytes` (configs/policy.yaml) read: a sparse terabyte planted there costs
   its writer nothing, so it is refused by its size before any byte of it is read.

An entry counts only while the chain holds, at that seq, a well-formed record with that hash,
kind `dataset_import` and the same content hash, schema hash, rows and files. A line pasted into
datasets.json cites no such record and grants nothing; an entry copied from another workspace
cites a record of another chain. (Forging a record inside the chain itself is the chain's
concern: `mlgate audit verify` and its witnesses.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.audit import canonical
from server.audit.records import parse_line
from server.files import NotRegular, TooLarge, locked, open_regular, read_regular, write_atomic
from server.settings import policy_limits

IMPORT_KIND = "dataset_import"
REGISTRY_FILE = "datasets.json"
LOCK_FILE = "datasets.lock"
MAX_RECORD_BYTES = 1 << 20
VOUCHED_FIELDS = ("content_hash", "schema_hash", "rows", "files")


@dataclass(frozen=True)
class Registration:
    """What the registry says about one content hash (`facts()` feeds the data.registered rule)."""

    content_hash: str
    entry: dict[str, Any] | None
    audited: bool
    detail: str
    # who imported it, with which credential and when, as the vouching import record says (the
    # entry's own imported_by and imported_at are not vouched): {principal, credential, time}
    imported: Mapping[str, Any] | None = None

    def facts(self) -> dict[str, Any]:
        """With the importer, rows and file names the chain's import record vouches for (None
        unvouched): what lets an agent tell one dataset version from another without loading each."""
        entry = self.entry or {}
        files = entry.get("files") if self.audited and isinstance(entry.get("files"), list) else None
        return {
            "registered": self.entry is not None, "audited": self.audited, "detail": self.detail,
            "imported_by": self._imported("principal"), "credential": self._imported("credential"), "imported_at": self._imported("time"),
            "rows": entry.get("rows") if self.audited else None,
            "files": [f.get("name") for f in files if isinstance(f, Mapping)] if files is not None else None,
        }

    def _imported(self, key: str) -> str | None:
        value = (self.imported or {}).get(key)
        return value if isinstance(value, str) else None


class DatasetRegistry:
    """`<state_dir>/datasets.json`, vouched for by the audit chain at `audit_path`."""

    def __init__(self, state_dir: Path | str, audit_path: Path | str, max_bytes: int | None = None) -> None:
        self.path = Path(state_dir) / REGISTRY_FILE
        self.lock_path = Path(state_dir) / LOCK_FILE
        self.audit_path = Path(audit_path)
        self.max_bytes = int(max_bytes if max_bytes is not None else policy_limits()["datasets"]["max_registry_bytes"])

    # --- reading ----------------------------------------------------------------------------

    def entries(self) -> tuple[dict[str, dict[str, Any]], str | None]:
        """({content hash: entry}, problem): the file as written, vouched or not. An unreadable
        file reads as no entries plus a problem (nothing in it can count)."""
        try:
            # A FIFO or link planted here is refused, never waited on; an oversized file, never read.
            raw = read_regular(self.path, self.max_bytes, "datasets.max_registry_bytes")
        except FileNotFoundError:
            return {}, None
        except NotRegular as exc:
            return {}, f"{REGISTRY_FILE} is {exc.strerror}"
        except TooLarge as exc:
            return {}, f"{exc.strerror}; it was not read"
        except OSError as exc:
            return {}, f"{REGISTRY_FILE} cannot be read ({exc.strerror})"
        try:
            document = json.loads(raw)
        except ValueError:
            return {}, f"{REGISTRY_FILE} is not valid JSON"
        datasets = document.get("datasets") if isinstance(document, dict) else None
        if not isinstance(datasets, dict):
            return {}, f"{REGISTRY_FILE} holds no datasets mapping"
        return {k: v for k, v in datasets.items() if isinstance(v, dict)}, None

    def registration(self, content_hash: str) -> Registration:
        """Whether `content_hash` is registered and its entry is vouched for by the chain."""
        entries, problem = self.entries()
        entry = entries.get(content_hash)
        if entry is None:
            detail = problem or "it is not in the dataset registry (no `mlgate data add` imported it here)"
            return Registration(content_hash, None, False, detail)
        record, why_not = self._vouching(content_hash, entry)
        return Registration(content_hash, entry, why_not is None, why_not or "imported and recorded in the audit chain", record)

    def unvouched_reason(self, content_hash: str, entry: Mapping[str, Any]) -> str | None:
        """None when the audit chain holds the import record `entry` cites; else why not."""
        return self._vouching(content_hash, entry)[1]

    def _vouching(self, content_hash: str, entry: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """(the import record `entry` cites, None) when the chain vouches for it; else (None, why not)."""
        cited = entry.get("audit")
        if entry.get("content_hash") != content_hash or not isinstance(cited, Mapping) or type(cited.get("seq")) is not int:
            return None, "its registry entry is malformed (it cites no audit record)"
        record = self._record_at(cited)
        if record is None:
            return None, f"the audit chain holds no record {cited.get('seq')} with the hash the registry entry cites (the entry was not written by `mlgate data add`)"
        if record.get("kind") != IMPORT_KIND or any(record.get(k) != entry.get(k) for k in VOUCHED_FIELDS):
            return None, f"audit record {cited['seq']} is not the import of this dataset (the registry entry was edited)"
        return record, None

    def unvouched(self) -> list[tuple[str, str]]:
        """[(content hash, why)] for every registry entry the audit chain does not vouch for."""
        entries, problem = self.entries()
        found = [(content_hash, self.unvouched_reason(content_hash, entry)) for content_hash, entry in sorted(entries.items())]
        return ([("-", problem)] if problem else []) + [(h, why) for h, why in found if why is not None]

    def _record_at(self, cited: Mapping[str, Any]) -> dict[str, Any] | None:
        """The well-formed chain record with the cited seq and hash: read at the cited offset,
        else found by a scan (an offset is only a hint)."""
        try:
            with open_regular(self.audit_path) as fd, open(fd, "rb", closefd=False) as chain:
                record = _matching(_line_at(chain, cited.get("offset")), cited)
                if record is not None:
                    return record
                chain.seek(0)
                return next((r for r in (_matching(line, cited) for line in _lines(chain)) if r is not None), None)
        except OSError:
            return None

    # --- writing ----------------------------------------------------------------------------

    def register(self, imported: Mapping[str, Any], principal: Any, audit: Any) -> tuple[dict[str, Any], bool]:
        """Record an import: chain a `dataset_import` record, then write the entry citing it.
        `imported`: content_hash, schema_hash, rows, files [{name, size, sha256}]. Returns
        (entry, created); an entry the chain already vouches for is kept as it is. Raises what
        the audit chain raises (IntegrityError) and OSError; nothing is written then."""
        content_hash = str(imported["content_hash"])
        with locked(self.lock_path):
            entries, _ = self.entries()
            current = entries.get(content_hash)
            if current is not None and self.unvouched_reason(content_hash, current) is None:
                return current, False
            body = {k: imported[k] for k in VOUCHED_FIELDS}
            who = {"name": principal.name, "role": principal.role, "credential": getattr(principal, "credential", None)}
            record = audit.append({"kind": IMPORT_KIND, "principal": who["name"], "role": who["role"], "credential": who["credential"], "transport": "cli", **body})
            entry = {**body, "imported_by": who, "imported_at": record["time"], "audit": _citation(audit, record)}
            entries[content_hash] = entry
            document = {"version": 1, "datasets": dict(sorted(entries.items()))}
            write_atomic(self.path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8"), 0o600)
        return entry, True


def _citation(audit: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """seq, hash and (when the chain's head is this record) the byte offset of its line."""
    head = getattr(audit, "head", None)
    size = len(canonical(dict(record))) + 1
    offset = head.offset - size if head is not None and head.seq == record["seq"] else None
    return {"seq": record["seq"], "hash": record["hash"], "offset": offset}


def _line_at(chain: Any, offset: Any) -> bytes:
    """The line at `offset`, at most MAX_RECORD_BYTES of it (a longer one is no record)."""
    if type(offset) is not int or offset < 0:
        return b""
    chain.seek(offset)
    return chain.readline(MAX_RECORD_BYTES)


def _lines(chain: Any) -> Iterator[bytes]:
    """The chain's lines, each read with at most MAX_RECORD_BYTES in memory. The rest of a longer
    line is skipped, never handed out: a piece cut from its middle must not pass for a record."""
    overlong = False
    while line := chain.readline(MAX_RECORD_BYTES):
        if not overlong:
            yield line
        overlong = not line.endswith(b"\n")


def _matching(line: bytes, cited: Mapping[str, Any]) -> dict[str, Any] | None:
    # A cheap byte test first: a scan parses only the line that carries the cited hash.
    if not line.endswith(b"\n") or f'"hash":"{cited.get("hash")}"'.encode() not in line:
        return None
    record, problem = parse_line(line)
    if problem is not None or record is None:
        return None
    return record if record["seq"] == cited.get("seq") and record["hash"] == cited.get("hash") else None


def report_unvouched_datasets(state_dir: Path | str, audit_path: Path | str) -> bool:
    """Prints every registry entry the audit chain does not vouch for (for `mlgate audit verify`);
    True when there is none."""
    found = DatasetRegistry(state_dir, audit_path).unvouched()
    for content_hash, why in found:
        print(f"NOT VOUCHED: dataset registry entry {content_hash}: {why}")
    if found:
        print(f"dataset registry NOT VOUCHED: {len(found)} entries have no matching import record in the audit chain")
    return not found
