"""What the audit chain vouches for: approvals, protected values in force, issued tokens.

State files (approvals/*.json, protected_in_force.json, tokens.json) are plain files an agent with
its own shell can edit; the audit chain is the record of what mlgate itself did. Every change of
governance state appends a record here first, and the stores answer from these records:

    approval_requested   approval_id, change_hash, approval_kind, described_sha256, principal, role
    approval_decided     approval_id, change_hash, decision (approve|deny), principal, role, credential
    approval_consumed    approval_id, change_hash
    protected_in_force   values {protected path: canonical value}
    token_created        token {name, role, id, fingerprint}, principal, role, credential
    token_revoked        token {name, id, fingerprint}, principal, role, credential

A token's `id` is the first 12 hex digits of the SHA-256 of the token (what `token list` shows and
what a `credential` names: `<token name>:<id>`); its `fingerprint` is the SHA-256 of the stored
hash, so the chain binds the exact tokens.json entry without holding what the server compares.

`ChainLedger` reads the chain file incrementally (the file only grows), so a lookup costs one
read of the records appended since the last one. Records whose line is not canonical or whose hash
does not match are ignored; chain integrity as a whole is `mlgate audit verify`'s job.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.audit.chain import AuditChain
from server.audit.records import parse_line
from server.audit.tail import ChainTail

APPROVAL_KINDS = ("approval_requested", "approval_decided", "approval_consumed")
TOKEN_KINDS = ("token_created", "token_revoked")
IN_FORCE_KIND = "protected_in_force"
# Canonical records are compact JSON with sorted keys, so a vouching record's line holds one of
# these byte strings; only those lines are parsed (the kind is then checked on the parsed record).
_MARKERS = re.compile(b"|".join(re.escape(f'"kind":"{k}"'.encode()) for k in (*APPROVAL_KINDS, *TOKEN_KINDS, IN_FORCE_KIND)))
APPROVER_ROLES = ("human", "operator")


def token_id(stored_hash: str) -> str:
    """The short, public id of a token: the first 12 hex digits of its SHA-256."""
    return stored_hash[:12]


def fingerprint(stored_hash: str) -> str:
    return hashlib.sha256(("mlgate-token-fingerprint:" + stored_hash).encode()).hexdigest()


def credential_of(name: str, stored_hash: str) -> str:
    """How audit records name a credential: `<token name>:<token id>`, never the token."""
    return f"{name}:{token_id(stored_hash)}"


@dataclass
class ApprovalEvents:
    """The chain's records of one approval, by kind (the first of each kind counts)."""

    requested: dict[str, Any] | None = None
    decided: dict[str, Any] | None = None
    consumed: dict[str, Any] | None = None


@dataclass
class _State:
    approvals: dict[str, ApprovalEvents] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    revoked: dict[str, int] = field(default_factory=dict)  # fingerprint -> seq of its revocation
    in_force: dict[str, str] | None = None

    def add(self, record: dict[str, Any]) -> None:
        kind = record["kind"]
        if kind in APPROVAL_KINDS and isinstance(record.get("approval_id"), str):
            events = self.approvals.setdefault(record["approval_id"], ApprovalEvents())
            slot = kind.removeprefix("approval_")
            if getattr(events, slot) is None:
                setattr(events, slot, record)
        elif kind == "token_created" and isinstance(record.get("token"), dict):
            self.created.append(record)
        elif kind == "token_revoked" and isinstance(record.get("token"), dict):
            self.revoked.setdefault(str(record["token"].get("fingerprint")), record["seq"])
        elif kind == IN_FORCE_KIND and isinstance(record.get("values"), dict):
            self.in_force = {str(k): str(v) for k, v in record["values"].items()}


class ChainLedger:
    """Read-only view of the vouching records of one audit chain file. Thread-safe."""

    def __init__(self, audit_path: Path | str) -> None:
        self.path = Path(audit_path)
        self._mutex = threading.Lock()
        self._tail = ChainTail(self.path)
        self._state = _State()

    def _refresh(self) -> _State:
        for restarted, data in self._tail.pieces():
            if restarted:
                self._state = _State()
            for line in _marked_lines(data):
                record, problem = parse_line(line)
                if problem is None and record is not None and isinstance(record.get("kind"), str):
                    self._state.add(record)
        return self._state

    # --- approvals ------------------------------------------------------------------------------

    def approval(self, approval_id: str) -> ApprovalEvents:
        with self._mutex:
            return self._refresh().approvals.get(approval_id) or ApprovalEvents()

    def in_force(self) -> dict[str, str] | None:
        """The protected values the server last recorded as in force (None if never)."""
        with self._mutex:
            found = self._refresh().in_force
            return None if found is None else dict(found)

    # --- tokens ---------------------------------------------------------------------------------

    def created_tokens(self) -> list[dict[str, Any]]:
        """token_created records, oldest first."""
        with self._mutex:
            return list(self._refresh().created)

    def live_token(self, name: str, role: str, stored_hash: str) -> dict[str, Any] | None:
        """The creation record of this exact tokens.json entry, unless revoked since."""
        wanted = fingerprint(stored_hash)
        with self._mutex:
            state = self._refresh()
            for record in state.created:
                token = record["token"]
                if (token.get("name"), token.get("role"), token.get("fingerprint")) == (name, role, wanted) and wanted not in state.revoked:
                    return record
        return None

    def live_tokens(self, roles: Iterable[str] = APPROVER_ROLES) -> list[dict[str, Any]]:
        """Creation records of tokens with one of `roles` that are not revoked."""
        roles = tuple(roles)
        with self._mutex:
            state = self._refresh()
            return [r for r in state.created if r["token"].get("role") in roles and r["token"].get("fingerprint") not in state.revoked]

    def credential_valid_at(self, credential: Any, principal: str, role: str, seq: int) -> bool:
        """Whether `credential` named a human/operator token of `principal` with `role` that was
        created before `seq` and not revoked before it."""
        if not isinstance(credential, str) or credential.count(":") != 1:
            return False
        name, ident = credential.split(":")
        with self._mutex:
            state = self._refresh()
            for record in state.created:
                token = record["token"]
                if (token.get("name"), token.get("id"), token.get("role")) != (name, ident, role) or name != principal:
                    continue
                revoked = state.revoked.get(str(token.get("fingerprint")))
                if role in APPROVER_ROLES and record["seq"] < seq and (revoked is None or revoked > seq):
                    return True
        return False


def _marked_lines(data: bytes) -> list[bytes]:
    """The complete lines of `data` that hold a vouching marker, in order (found at C speed)."""
    lines, last = [], -1
    for match in _MARKERS.finditer(data):
        start = data.rfind(b"\n", 0, match.start()) + 1
        if start > last:
            lines.append(data[start : data.index(b"\n", match.end()) + 1])
            last = start
    return lines


def token_body(name: str, role: str | None, stored_hash: str) -> dict[str, Any]:
    """The `token` part of a token_created/token_revoked record."""
    body: dict[str, Any] = {"name": name, "id": token_id(stored_hash), "fingerprint": fingerprint(stored_hash)}
    if role is not None:
        body["role"] = role
    return body


def actor(principal: Any) -> dict[str, Any]:
    """principal, role and credential fields for a record of what `principal` did."""
    fields: dict[str, Any] = {"principal": principal.name, "role": principal.role}
    credential = getattr(principal, "credential", None)
    if credential:
        fields["credential"] = credential
    return fields


class ChainWriter:
    """Appends vouching records: through the server's open chain when there is one (`sink`),
    otherwise through the chain opened for this one write (a CLI command, a hook).

    Raises IntegrityError when the chain is damaged or locked: nothing is vouched then."""

    def __init__(self, audit_path: Path | str, sink: Any = None) -> None:
        self.path = Path(audit_path)
        self._sink = sink

    def append(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        if self._sink is not None:
            return self._sink.append(record)
        chain = AuditChain(self.path)
        try:
            return chain.append(record)
        finally:
            chain.close()
