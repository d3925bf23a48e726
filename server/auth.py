"""Bearer tokens for the HTTP transports: a hashed token store and the verifier the SDK calls.

A token is shown once, when it is created; the state directory keeps only its SHA-256 with the
token's name (the principal the audit records), its role and its creation time, and the audit
chain records its creation and revocation (a token without a creation record grants nothing). The file is
written atomically with mode 0600 under an exclusive lock, and re-read whenever it changes, so a
revoked token stops working on a running server at its next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mcp.server.auth.provider import AccessToken

from policies import ROLES, Principal
from server.clock import SystemClock
from server.files import locked, write_atomic
from server.identity import ROLE_SCOPE_PREFIX
from server.ledger import APPROVER_ROLES, ChainLedger, ChainWriter, actor, fingerprint, token_body
from tools.errors import IntegrityError, InvalidInput, NotFound, PolicyDenied

TOKENS_FILE = "tokens.json"
TOKEN_PREFIX = "mlgate_"
TOKEN_BYTES = 32
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FORMAT_VERSION = 1
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenRecord:
    """What the store keeps of a token: never the token itself."""

    name: str
    role: str
    sha256: str
    created: str

    def public(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "created": self.created}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> None:
    """Raises InvalidInput unless `name` can stand as a principal name in the audit."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"token name {name!r} is not allowed",
            "use 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
            rule_id="token.name",
        )


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", f"use one of: {', '.join(ROLES)}", rule_id="token.role")


class TokenStore:
    """The tokens of one state directory (`<state_dir>/tokens.json`).

    A token counts only while the audit chain holds its `token_created` record and no
    `token_revoked` one (server/ledger.py): a hash pasted into tokens.json grants nothing. Human and
    operator tokens are issued by an operator; only the very first operator token of a state
    directory is issued without one (bootstrap), and the chain records that too."""

    def __init__(self, state_dir: Path, clock: Any = None, audit: Any = None) -> None:
        self._path = Path(state_dir) / TOKENS_FILE
        self._clock = clock or SystemClock()
        self._cache: tuple[tuple[int, int, int], tuple[TokenRecord, ...]] | None = None
        audit_path = Path(state_dir) / "audit.jsonl"
        self.ledger = ChainLedger(audit_path)
        self._writer = ChainWriter(audit_path, audit)

    @property
    def path(self) -> Path:
        return self._path

    def create(self, name: str, role: str, *, issuer: Principal | None = None) -> str:
        """Stores a new token's hash, chains its creation and returns the token (shown once, never stored).

        Raises InvalidInput for a bad name or role, or a name already in use; PolicyDenied when a
        human/operator token is asked for without an operator credential (see `needs_operator`);
        IntegrityError when the audit chain cannot record."""
        check_name(name)
        check_role(role)
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        with self._locked():
            records = list(self._read())
            if any(r.name == name for r in records):
                raise InvalidInput(f"a token named {name!r} exists", f"revoke it first (mlgate token revoke {name}) or pick another name", rule_id="token.name")
            bootstrap = self._check_issuer(role, issuer)
            record = TokenRecord(name, role, token_hash(token), self._clock.iso())
            self._writer.append({"kind": "token_created", "token": token_body(name, role, record.sha256), **_issued_by(issuer, bootstrap)})
            records.append(record)
            self._write(records)
        return token

    def revoke(self, name: str, *, issuer: Principal | None = None) -> None:
        """Removes the token called `name` and chains the revocation. Raises NotFound if there is
        none, PolicyDenied for a live human/operator token without an operator credential."""
        with self._locked():
            records = list(self._read())
            found = [r for r in records if r.name == name]
            if not found:
                raise NotFound(f"no token named {name!r}", "list the tokens with `mlgate token list`", rule_id="token.unknown")
            if found[0].role in APPROVER_ROLES and self.vouched(found[0]):
                self._require_operator(issuer, f"revoking the {found[0].role} token {name!r}")
                self._keep_an_operator(found[0])
            self._writer.append({"kind": "token_revoked", "token": token_body(name, None, found[0].sha256), **_issued_by(issuer, False)})
            self._write([r for r in records if r.name != name])

    def needs_operator(self, role: str) -> bool:
        """Whether issuing a `role` token needs an operator credential: every human or operator
        token does, except the first operator token the state directory's audit chain ever records
        (revoking operator tokens never reopens the bootstrap)."""
        return role in APPROVER_ROLES and (role != "operator" or any(r["token"].get("role") == "operator" for r in self.ledger.created_tokens()))

    def _keep_an_operator(self, record: TokenRecord) -> None:
        """Raises PolicyDenied when `record` is the last live operator token: without one no human
        or operator token could ever be issued again (the bootstrap is once per state directory)."""
        live = self.ledger.live_tokens(("operator",))
        if record.role == "operator" and all(r["token"].get("fingerprint") == fingerprint(record.sha256) for r in live):
            raise PolicyDenied(
                f"{record.name!r} is the last operator token of this state directory",
                f"issue another operator token first (`mlgate token create --name NAME --role operator` with an operator token in MLGATE_TOKEN), then revoke {record.name!r}",
                rule_id="token.last_operator",
            )

    def _check_issuer(self, role: str, issuer: Principal | None) -> bool:
        """True for the bootstrap operator token. Raises PolicyDenied when an operator is needed."""
        if self.needs_operator(role):
            self._require_operator(issuer, f"issuing a {role} token")
            return False
        return role == "operator"

    def _require_operator(self, issuer: Principal | None, what: str) -> None:
        credential = getattr(issuer, "credential", None)
        if issuer is None or issuer.role != "operator" or not self.ledger.credential_valid_at(credential, issuer.name, "operator", sys.maxsize):
            raise PolicyDenied(
                f"{what} needs an operator credential",
                "an operator runs this with their own token in MLGATE_TOKEN (or types it at the prompt); "
                "the first operator token of a state directory is created with `mlgate token create --name NAME --role operator`",
                rule_id="token.operator_required",
            )

    def vouched(self, record: TokenRecord) -> bool:
        """Whether the audit chain holds this entry's creation and no revocation."""
        return self.ledger.live_token(record.name, record.role, record.sha256) is not None

    def records(self) -> tuple[TokenRecord, ...]:
        """Every stored token as the file holds it (vouched or not), re-read only when the file
        changed. Raises IntegrityError if unreadable."""
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return ()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._read())
        return self._cache[1]

    def match(self, token: str) -> TokenRecord | None:
        """The record whose hash equals the token's, compared in constant time over every record,
        if the audit chain vouches for it (None otherwise)."""
        digest = token_hash(token)
        found = None
        for record in self.records():
            if hmac.compare_digest(record.sha256, digest):
                found = record
        return found if found is not None and self.vouched(found) else None

    def _read(self) -> tuple[TokenRecord, ...]:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return ()
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"the token store {self._path} is unreadable ({type(exc).__name__})", "restore it from a backup or remove it and issue new tokens", rule_id="token.store") from None
        return _records_from(data, self._path)

    def _write(self, records: list[TokenRecord]) -> None:
        payload = json.dumps({"version": FORMAT_VERSION, "tokens": [asdict(r) for r in records]}, indent=2) + "\n"
        write_atomic(self._path, payload.encode(), mode=0o600)
        self._cache = None

    def _locked(self) -> AbstractContextManager[None]:
        return locked(self._path.with_suffix(".lock"))


def _issued_by(issuer: Principal | None, bootstrap: bool) -> dict[str, Any]:
    """Who issued or revoked a token, for its chain record (never the token)."""
    if issuer is None:
        return {"principal": "unauthenticated", "role": None, "bootstrap": bootstrap}
    return {**actor(issuer), "bootstrap": bootstrap}


def _records_from(data: Any, path: Path) -> tuple[TokenRecord, ...]:
    try:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError("version")
        return tuple(TokenRecord(**{k: str(t[k]) for k in ("name", "role", "sha256", "created")}) for t in data["tokens"])
    except (AttributeError, KeyError, TypeError, ValueError):
        raise IntegrityError(f"the token store {path} is malformed", "restore it from a backup or remove it and issue new tokens", rule_id="token.store") from None


class TokenVerifier:
    """The SDK's TokenVerifier over a TokenStore: a known token becomes AccessToken(name, role scope).

    An unreadable store verifies nothing (fails closed)."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            record = self._store.match(token)
        except IntegrityError as exc:
            logger.error("refusing every token: %s (%s)", exc.reason, exc.remediation)
            return None
        if record is None:
            return None
        # The AccessToken travels in the request scope: it carries the hash, never the secret
        # (server/identity.py names the credential `<name>:<first 12 hex digits>` from it).
        return AccessToken(token=record.sha256, client_id=record.name, scopes=[ROLE_SCOPE_PREFIX + record.role])
