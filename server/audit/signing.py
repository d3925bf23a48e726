"""Signed checkpoints of the audit chain: Ed25519 signed heads, modelled on RFC 9162 tree heads.

The private key lives OUTSIDE the state directory, in a file only the server's OS user can read
(`audit.signing_key_path` in the server config, `MLGATE_AUDIT_SIGNING_KEY`, default
`~/.config/mlgate/keys/<workspace-id>.ed25519`, mode 0600, PKCS#8 PEM). `mlgate audit keygen`
creates it, writes the public key beside it (`<key>.pub`, hex) and chains an `audit_key` record
holding the public key, so a verifier without the private key can check every signature. A later
key is accepted only when its `audit_key` record carries a rotation signature by the key before it.

When the key file exists, every anchor the chain writes (batched: after `fsync_every` records or
`fsync_interval_ms`) is a signed head {seq, hash, time, key_id, sig}: the anchor file carries it and
`audit.checkpoints` keeps each one, one JSON line per checkpoint. Since each record's hash covers
the one before it, a signed head commits to the whole chain up to it. keygen also notes the key's
path (never the key) in `audit.signer` beside the chain, so every process that appends signs, the
CLI's one-off writers included; each must run as a user that can read the key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.audit.records import Head, canonical, sibling
from server.files import write_atomic
from tools.errors import IntegrityError, InvalidInput

KEY_KIND = "audit_key"
STH_FIELDS = ("seq", "hash", "time", "key_id", "sig")
_STH_LABEL = "mlgate-audit-signed-head/v1"
_ROTATION_LABEL = "mlgate-audit-key-rotation/v1"


def key_id(public_hex: str) -> str:
    """A short, stable name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def public_hex(private: Ed25519PrivateKey) -> str:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def pub_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


# --- the key file ---------------------------------------------------------------------------------


def create_key(path: Path, private: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
    """`private` (a new key when None) written to `path` (0600, directory 0700) and its public half
    to `<path>.pub`.

    Raises InvalidInput when `path` already exists (rotation replaces it through `replace_key`).
    """
    private = private or Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise InvalidInput(f"a signing key already exists at {path}", "rotate it with `mlgate audit keygen --rotate`", rule_id="audit.key_exists") from None
    with os.fdopen(fd, "wb") as out:
        out.write(_pem(private))
    _write_public(path, private)
    return private


def replace_key(path: Path, private: Ed25519PrivateKey) -> None:
    """Writes `private` over the key at `path` atomically (same modes as `create_key`)."""
    temp = path.with_name(f".{path.name}.new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(_pem(private))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    _write_public(path, private)


def load_key(path: Path) -> Ed25519PrivateKey:
    """The private key at `path`. Raises IntegrityError when it is unreadable or not Ed25519."""
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise IntegrityError(f"the audit signing key {path} cannot be read ({type(exc).__name__})", "check the key file's owner and mode (0600, the server's user)", rule_id="audit.key_unreadable") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise IntegrityError(f"the audit signing key {path} is not an Ed25519 key", "create one with `mlgate audit keygen`", rule_id="audit.key_unreadable")
    return loaded


def _pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _write_public(path: Path, private: Ed25519PrivateKey) -> None:
    target = pub_path(path)
    temp = target.with_name(f".{target.name}.new")
    temp.write_text(public_hex(private) + "\n")
    temp.chmod(0o644)
    os.replace(temp, target)


def pinned_public_key(path: Path | None) -> str | None:
    """The public key an operator pinned beside the private key (`<key>.pub`), else the one derived
    from the private key when this user can read it, else None."""
    if path is None:
        return None
    try:
        text = pub_path(path).read_text().strip()
        bytes.fromhex(text)
        return text
    except (OSError, ValueError):
        pass
    try:
        return public_hex(load_key(path)) if path.is_file() else None
    except (IntegrityError, OSError):
        return None


# --- signing and checking -----------------------------------------------------------------------


def head_message(seq: int, hash_: str, time: str, kid: str) -> bytes:
    return canonical({"label": _STH_LABEL, "seq": seq, "hash": hash_, "time": time, "key_id": kid})


def sign_head(private: Ed25519PrivateKey, head: Head, time: str) -> dict[str, Any]:
    kid = key_id(public_hex(private))
    return {"seq": head.seq, "hash": head.hash, "time": time, "key_id": kid, "sig": private.sign(head_message(head.seq, head.hash, time, kid)).hex()}


def head_signature_ok(sth: Mapping[str, Any], public: str) -> bool:
    """Whether `sth` is a well-formed signed head whose signature verifies under `public` (hex)."""
    try:
        if type(sth["seq"]) is not int:  # a float (1e999) or a string is no seq a signer wrote
            return False
        message = head_message(sth["seq"], str(sth["hash"]), str(sth["time"]), str(sth["key_id"]))
        return _verifies(public, str(sth["sig"]), message)
    except (KeyError, TypeError, ValueError):
        return False


def rotation_message(previous_key_id: str, public: str) -> bytes:
    return canonical({"label": _ROTATION_LABEL, "previous_key_id": previous_key_id, "public_key": public})


def key_record(private: Ed25519PrivateKey, previous: Ed25519PrivateKey | None = None) -> dict[str, Any]:
    """The `audit_key` record announcing `private`'s public key (signed by `previous` on rotation)."""
    public = public_hex(private)
    record: dict[str, Any] = {"kind": KEY_KIND, "key_id": key_id(public), "public_key": public}
    if previous is not None:
        old = key_id(public_hex(previous))
        record |= {"previous_key_id": old, "rotation_sig": previous.sign(rotation_message(old, public)).hex()}
    return record


def rotation_ok(record: Mapping[str, Any], previous_public: str) -> bool:
    """Whether a later `audit_key` record is signed by the key before it (hex public key)."""
    try:
        message = rotation_message(key_id(previous_public), str(record["public_key"]))
        return record.get("previous_key_id") == key_id(previous_public) and _verifies(previous_public, str(record["rotation_sig"]), message)
    except (KeyError, TypeError, ValueError):
        return False


def _verifies(public: str, signature_hex: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(bytes.fromhex(signature_hex), message)
        return True
    except (InvalidSignature, ValueError):
        return False


def record_key_location(chain_path: Path, key_path: Path) -> None:
    """Notes beside the chain where its signing key is, so every writer of the chain signs (a CLI
    command opening the chain by path alone, too). The key itself never enters the state dir."""
    write_atomic(sibling(chain_path, "signer"), str(key_path.absolute()).encode() + b"\n", mode=0o600)


def chain_signer(chain_path: Path) -> Signer | None:
    """The signer named beside the chain by `record_key_location`, or None."""
    try:
        text = sibling(chain_path, "signer").read_text().strip()
    except OSError:
        return None
    return Signer(Path(text)) if text else None


class Signer:
    """Signs heads with the key file at `path` while it exists; re-reads it when it changes (a
    rotation by `mlgate audit keygen` reaches a running server at its next anchor)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._key: Ed25519PrivateKey | None = None

    def sign(self, head: Head, time: str) -> dict[str, Any] | None:
        """The signed head, or None without a usable key (verify reports the unsigned head)."""
        key = self._current()
        return None if key is None or head.seq < 0 else sign_head(key, head, time)

    def _current(self) -> Ed25519PrivateKey | None:
        if self.path is None:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            self._stamp, self._key = None, None
            return None
        stamp = (info.st_ino, info.st_mtime_ns)
        if stamp != self._stamp:
            try:
                self._key = load_key(self.path)
            except IntegrityError:
                self._key = None
            self._stamp = stamp
        return self._key
