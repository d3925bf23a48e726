"""The protected-field overrides log and the audit records that witness it.

`logs/protected_overrides.log` is in the workspace, where anyone with a shell can edit it, so each
line mlgate writes is bound to the audit chain: before the lines of one approved change are written,
an `overrides_logged` record is chained listing the SHA-256 of each line's text (every cell but
the last), and each line ends with that record's witness `"<seq>:<hash>"`. `mlgate audit verify`
checks the log against the chain's records (server/audit/crosscheck.py):

    override_unwitnessed     a line without a witness cell: written by hand (or before lines had one)
    override_not_in_chain    a line's witness names no overrides record of the chain: a forged
                             witness, or the chain rewritten
    override_edited          a line's witness names a genuine record that does not list this line's
                             text: the line was edited, or forged with a copied witness
    override_removed         a record lists lines the log no longer holds: deleted (or edited)
    overrides_log_unreadable the log is there but not a regular file mlgate could have written

Lines starting with `#` and blank lines are comments (the template's header); they record nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.audit.records import bounded_lines, parse_line
from server.audit.witness import Witness

OVERRIDES_KIND = "overrides_logged"
OVERRIDES_LOG = "logs/protected_overrides.log"
MARK = b'"kind":"' + OVERRIDES_KIND.encode() + b'"'


def line_digest(text: str) -> str:
    """What the chain records of one line: the SHA-256 of its text before the witness cell."""
    return hashlib.sha256(text.encode()).hexdigest()


def logged_record(texts: Sequence[str], approval_ids: Iterable[str], relpath: str = OVERRIDES_LOG) -> dict[str, Any]:
    """The `overrides_logged` record chained before `texts` are appended to the log. It keeps the
    texts too (field names, values, approver, approval id: nothing secret), so a server killed
    between the record and the lines can write them on its next start (`missing_lines`)."""
    return {"kind": OVERRIDES_KIND, "log": relpath, "approval_ids": sorted(set(approval_ids)), "lines": [line_digest(t) for t in texts], "texts": list(texts)}


def overrides_record(raw: bytes) -> dict[str, Any] | None:
    """The intact `overrides_logged` record one chain line holds, else None (JSON parsed only for
    lines that mention the kind)."""
    if MARK not in raw:
        return None
    record, why = parse_line(raw)
    return record if why is None and record is not None and record.get("kind") == OVERRIDES_KIND else None


def chained_records(chain_path: Path) -> list[dict[str, Any]]:
    """The chain's intact `overrides_logged` records, oldest first."""
    found: list[dict[str, Any]] = []
    try:
        with open(chain_path, "rb") as chain:
            found = [record for raw in bounded_lines(chain) if (record := overrides_record(raw)) is not None]
    except FileNotFoundError:
        pass
    return found


def missing_lines(lines: Sequence[LogLine], records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Full lines (text, tab, witness) that intact records vouch for and the log does not hold, in
    chain order: what a write cut short by a kill left out. Records without texts yield none."""
    held = Counter((line.witness, line_digest(line.text)) for line in lines if line.witness is not None)
    missing = []
    for record in records:
        witness = f"{record['seq']}:{record['hash']}"
        for text in record.get("texts") or []:
            key = (witness, line_digest(str(text)))
            if held[key] > 0:
                held[key] -= 1
            elif line_digest(str(text)) in (record.get("lines") or []):
                missing.append(f"{text}\t{witness}")
    return missing


@dataclass(frozen=True)
class LogLine:
    number: int  # 1-based line of the log file
    text: str  # the cells before the witness (the whole line when it has no witness)
    witness: str | None  # "<seq>:<hash>" as written, None when the last cell is not one


def parse_log(data: str) -> list[LogLine]:
    """The override lines of a log's text (comments and blank lines skipped)."""
    found = []
    for number, line in enumerate(data.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        text, _, last = line.rpartition("\t")
        witnessed = bool(text) and Witness("overrides", "", last).parsed() is not None
        found.append(LogLine(number, text if witnessed else line, last if witnessed else None))
    return found


def read_log(path: Path) -> tuple[list[LogLine], str | None]:
    """(lines, None), or ([], why) when the log exists but is not a readable regular file. A
    missing log has no lines."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], f"{path.name} cannot be read ({exc.strerror}): mlgate writes it as a regular file, never through a link"
    with os.fdopen(fd, "rb") as handle:
        try:
            return parse_log(handle.read().decode()), None
        except (OSError, UnicodeDecodeError) as exc:
            return [], f"{path.name} cannot be read as UTF-8 text ({type(exc).__name__})"


def check_log(lines: Sequence[LogLine], records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """[(finding kind, detail)] for the log's lines against the chain's `overrides_logged`
    records (each with its seq and hash, already checked against its line of the chain)."""
    by_witness = {f"{r['seq']}:{r['hash']}": r for r in records}
    unclaimed = {w: Counter(str(d) for d in r.get("lines") or []) for w, r in by_witness.items()}
    findings = [_check_line(line, by_witness, unclaimed) for line in lines]
    for witness, left in unclaimed.items():
        if sum(left.values()):
            seq = witness.split(":")[0]
            detail = f"audit record seq {seq} lists {sum(left.values())} override line(s) the log no longer holds: deleted, or edited"
            findings.append(("override_removed", detail))
    return [f for f in findings if f is not None]


def _check_line(line: LogLine, by_witness: Mapping[str, Any], unclaimed: dict[str, Counter]) -> tuple[str, str] | None:
    where = f"{OVERRIDES_LOG} line {line.number}"
    if line.witness is None:
        return "override_unwitnessed", f"{where} carries no audit witness: it was not written by mlgate (or predates witnessed lines)"
    if line.witness not in by_witness:
        return "override_not_in_chain", f"{where} names audit record {line.witness.split(':')[0]}, which the chain does not hold as an overrides record: forged, or the chain was rewritten"
    left = unclaimed[line.witness]
    digest = line_digest(line.text)
    if left[digest] > 0:
        left[digest] -= 1
        return None
    return "override_edited", f"{where} is not a line audit record {line.witness.split(':')[0]} recorded: edited, or added with a copied witness"
