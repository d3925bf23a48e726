"""`mlgate audit keygen`: the Ed25519 key that signs the audit chain's anchored heads.

The key file is created 0600 at the configured place outside the state directory (see
server/audit/signing.py), its public half beside it (`.pub`), and the public key is chained as an
`audit_key` record so any verifier can check signatures. `--rotate` replaces the key; the new
`audit_key` record is signed by the old key, which is what `audit verify` accepts as a rotation.
"""

from __future__ import annotations

import argparse
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.audit.signing import create_key, key_id, key_record, load_key, public_hex, record_key_location, replace_key
from server.audit.workspace import open_chain
from server.cli import add_workspace_option
from server.settings import load_settings


def add_keygen(commands) -> None:
    keygen = commands.add_parser("keygen", help="create (or --rotate) the key that signs the audit chain's checkpoints")
    add_workspace_option(keygen)
    keygen.add_argument("--rotate", action="store_true", help="replace the existing key; the old key signs the rotation")
    keygen.set_defaults(handler=keygen_command)


def keygen_command(args: argparse.Namespace) -> int:
    """Raises InvalidInput when a key exists without --rotate, IntegrityError when the old key is unreadable."""
    settings = load_settings(args.workspace)
    path = settings.audit_signing_key
    if args.rotate:
        # the rotation is chained (signed by the old key) before the new key signs anything
        previous, private = load_key(path), Ed25519PrivateKey.generate()
        _announce(settings, key_record(private, previous))
        replace_key(path, private)
    else:
        private = create_key(path)
        _announce(settings, key_record(private))
    print(f"audit signing key {key_id(public_hex(private))} at {path} (public key {path}.pub)", file=sys.stderr)
    print(public_hex(private))
    return 0


def _announce(settings, record: dict) -> None:
    record_key_location(settings.audit_path, settings.audit_signing_key)
    chain = open_chain(settings)
    try:
        chain.append({**record, "actor": "operator", "action": "audit.keygen"})
    finally:
        chain.close()
