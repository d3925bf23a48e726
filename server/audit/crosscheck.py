"""Checks of the chain against what is kept outside it: witnesses, signed heads, the pinned key.

    witness_unreadable   a witness is not "<seq>:<hash>"
    witness_missing      a witness names a seq the chain no longer holds (records were removed)
    witness_mismatch     the chain's record at the witnessed seq has another hash (rewritten)
    key_changed          an `audit_key` record without a rotation signature by the key before it
    key_mismatch         the key pinned beside the private key is not the chain's current key
    key_not_in_chain     a signing key is configured but the chain announces none
    unknown_key          a signed head names a key the chain does not hold (validly)
    forged_signature     a signed head whose signature does not verify
    key_out_of_term      a head signed by a key outside its term: before the record announcing it,
                         or after the rotation record that retired it (a leaked old key)
    checkpoint_missing   a signed head names a seq the chain no longer holds
    checkpoint_mismatch  the chain's record at a signed seq has another hash
    unsigned_head        the anchored head is not signed although a key is in force
    override_*           the protected-field overrides log disagrees with its audit records
                         (server/audit/overrides.py)

Reads only; `crosscheck` never raises for a damaged chain or store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.audit.overrides import check_log, overrides_record, read_log
from server.audit.records import GENESIS_HASH, Head, bounded_lines, loads, read_anchor, read_anchor_signature, sibling
from server.audit.signing import KEY_KIND, head_signature_ok, key_id, rotation_ok
from server.audit.witness import Witness
from tools.errors import IntegrityError

_KEY_MARK = b'"kind":"' + KEY_KIND.encode() + b'"'


@dataclass(frozen=True)
class Finding:
    kind: str
    detail: str


@dataclass
class CrossReport:
    findings: list[Finding] = field(default_factory=list)
    witnesses: dict[str, int] = field(default_factory=dict)  # checked, by source
    checkpoints: int = 0  # signed heads checked
    key_id: str | None = None  # the chain's current signing key
    notes: list[str] = field(default_factory=list)  # sources that could not be read

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        """What the CLI prints: one line per finding, then a summary of what was checked (nothing
        at all for a chain with neither witnesses nor a key, and nothing wrong)."""
        out = [f"audit {f.kind.replace('_', ' ').upper()}: {f.detail}" for f in self.findings]
        if not (out or self.witnesses or self.key_id or self.notes):
            return []
        by_source = ", ".join(f"{source} {n}" for source, n in sorted(self.witnesses.items())) or "none found"
        out.append(f"audit witnesses: {sum(self.witnesses.values())} checked ({by_source})")
        signing = f"key {self.key_id}, {self.checkpoints} signed head(s) checked" if self.key_id else "no signing key in the chain"
        out.append(f"audit signatures: {signing}")
        out.extend(f"audit note: {note}" for note in self.notes)
        return out


@dataclass
class _Scan:
    """What one pass over the chain file yields: hashes at the wanted seqs, key records, overrides
    records (intact ones only: their line lists are what the log is checked against), the end."""

    hashes: dict[int, str] = field(default_factory=dict)
    keys: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = -1


def crosscheck(chain_path: Path, witnesses: Iterable[Witness], pinned_key: str | None, overrides_log: Path | None = None) -> CrossReport:
    """Checks witnesses, signed heads, the pinned public key and (given its path) the overrides log
    against the chain at `chain_path`."""
    report = CrossReport()
    witnesses = list(witnesses)
    signed = [*_checkpoints(sibling(chain_path, "checkpoints"))]
    anchor, anchor_signed = _anchor(chain_path)
    if anchor_signed is not None:
        signed.append(("the anchor", anchor_signed))
    wanted = {p[0] for w in witnesses if (p := w.parsed())} | {s["seq"] for _, s in signed if isinstance(s.get("seq"), int)}
    scan = _scan(chain_path, wanted)
    for witness in witnesses:
        report.witnesses[witness.source] = report.witnesses.get(witness.source, 0) + 1
        _check_witness(witness, scan, report)
    keys = _check_keys(scan.keys, pinned_key, report)
    for where, head in signed:
        _check_signed(where, head, keys, scan, report)
    _check_anchor_signed(anchor, anchor_signed, scan.keys, report)
    if overrides_log is not None:
        _check_overrides(overrides_log, scan, report)
    return report


def _scan(path: Path, wanted: set[int]) -> _Scan:
    scan = _Scan()
    try:
        lines = path.open("rb")
    except OSError:
        return scan
    with lines:
        for line_no, raw in enumerate(bounded_lines(lines)):
            # an intact chain holds seq n on line n+1 (`verify` reports any other layout)
            if line_no in wanted or _KEY_MARK in raw:
                record = _parsed(raw)
                if record is not None:
                    scan.hashes[record["seq"]] = record["hash"]
                    scan.keys += [record] if record.get("kind") == KEY_KIND else []
            override = overrides_record(raw)
            scan.overrides += [override] if override is not None else []
            scan.last_seq = line_no
    return scan


def _parsed(raw: bytes) -> dict[str, Any] | None:
    try:
        record = loads(raw)
    except ValueError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("seq"), int) and isinstance(record.get("hash"), str)
    return record if ok else None


def _check_witness(witness: Witness, scan: _Scan, report: CrossReport) -> None:
    parsed = witness.parsed()
    if parsed is None:
        report.findings.append(Finding("witness_unreadable", f"{witness.source} {witness.where} holds {str(witness.text)[:80]!r}, not '<seq>:<hash>'"))
        return
    seq, digest = parsed
    if seq == -1 and digest == GENESIS_HASH:
        return
    if seq > scan.last_seq:
        detail = f"{witness.source} {witness.where} saw seq {seq}, but the chain ends at seq {scan.last_seq}: records were removed"
        report.findings.append(Finding("witness_missing", detail))
    elif scan.hashes.get(seq) != digest:
        detail = f"{witness.source} {witness.where} saw seq {seq} with hash {digest[:16]}; the chain's seq {seq} is {str(scan.hashes.get(seq))[:16]}: the chain was rewritten"
        report.findings.append(Finding("witness_mismatch", detail))


def _check_overrides(log_path: Path, scan: _Scan, report: CrossReport) -> None:
    lines, unreadable = read_log(log_path)
    if unreadable is not None:
        report.findings.append(Finding("overrides_log_unreadable", unreadable))
    if lines:
        report.witnesses["overrides"] = len(lines)
    report.findings += [Finding(kind, detail) for kind, detail in check_log(lines, scan.overrides)]


@dataclass
class _Term:
    """A key the chain validly announces and the seqs whose heads it may sign: from the record that
    announces it to the record that rotates it out (the key before signs the head at a rotation
    record, the new key every head from there on)."""

    public: str
    since: int
    until: int | None = None

    def covers(self, seq: int) -> bool:
        return self.since <= seq and (self.until is None or seq <= self.until)


def _check_keys(records: list[dict[str, Any]], pinned: str | None, report: CrossReport) -> dict[str, _Term]:
    """The keys the chain validly announces {key_id: term}; a change without rotation is reported."""
    keys: dict[str, _Term] = {}
    current: _Term | None = None
    for record in records:
        public = str(record.get("public_key", ""))
        named = _names_its_key(record, public)
        if named and (current is None or rotation_ok(record, current.public)):
            if current is not None:
                current.until = record["seq"]
            current = keys[str(record.get("key_id"))] = _Term(public, record["seq"])
            continue
        detail = f"seq {record['seq']} announces key {str(record.get('key_id'))[:16]} without a rotation signed by the key before it (or under another key's name)"
        report.findings.append(Finding("key_changed", detail))
    report.key_id = next((k for k, v in keys.items() if v is current), None)
    if pinned is not None and current is None:
        report.findings.append(Finding("key_not_in_chain", "a signing key is configured for this workspace but the chain announces no key"))
    elif pinned is not None and pinned != current.public:
        report.findings.append(Finding("key_mismatch", f"the public key pinned beside the signing key is not the chain's key {report.key_id}: the key was swapped"))
    return keys


def _names_its_key(record: dict[str, Any], public: str) -> bool:
    try:
        return record.get("key_id") == key_id(public) and len(bytes.fromhex(public)) == 32
    except ValueError:
        return False


def _check_signed(where: str, head: dict[str, Any], keys: dict[str, _Term], scan: _Scan, report: CrossReport) -> None:
    report.checkpoints += 1
    seq, term = head.get("seq"), keys.get(str(head.get("key_id")))
    if term is None:
        report.findings.append(Finding("unknown_key", f"{where}: signed head at seq {seq} names key {str(head.get('key_id'))[:16]}, which the chain does not hold"))
    elif not head_signature_ok(head, term.public):
        report.findings.append(Finding("forged_signature", f"{where}: the signature of the head at seq {seq} does not verify under key {head.get('key_id')}"))
    elif not isinstance(seq, int) or seq > scan.last_seq:
        report.findings.append(Finding("checkpoint_missing", f"{where}: a signed head at seq {seq}, but the chain ends at seq {scan.last_seq}: records were removed"))
    elif not term.covers(seq):
        served = f"from seq {term.since}" + (f" to seq {term.until}" if term.until is not None else "")
        report.findings.append(Finding("key_out_of_term", f"{where}: the head at seq {seq} is signed by key {head.get('key_id')}, which signs heads {served} only: a retired (or not yet announced) key signed it"))
    elif scan.hashes.get(seq) != head.get("hash"):
        report.findings.append(Finding("checkpoint_mismatch", f"{where}: the signed head at seq {seq} is not the chain's record there: the chain was rewritten"))


def _check_anchor_signed(anchor: Head | None, signed: dict[str, Any] | None, key_records: list[dict[str, Any]], report: CrossReport) -> None:
    if anchor is None or not key_records or key_records[0]["seq"] > anchor.seq:
        return
    if signed is None or (signed.get("seq"), signed.get("hash")) != (anchor.seq, anchor.hash):
        detail = f"the anchored head seq {anchor.seq} carries no signature of its own although key {key_records[0].get('key_id')} is in force"
        report.findings.append(Finding("unsigned_head", detail))


def _checkpoints(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        lines = path.open("rb")
    except OSError:
        return
    with lines:
        for n, raw in enumerate(bounded_lines(lines), 1):
            try:
                head = loads(raw)
            except ValueError:
                head = None
            yield f"{path.name} line {n}", head if isinstance(head, dict) else {"seq": None, "key_id": None}


def _anchor(chain_path: Path) -> tuple[Head | None, dict[str, Any] | None]:
    anchor_path = sibling(chain_path, "head")
    try:
        return read_anchor(anchor_path), read_anchor_signature(anchor_path)
    except IntegrityError:
        return None, None
