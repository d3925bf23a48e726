"""`mlgate audit keygen`: the Ed25519 key that signs the audit chain's anchored heads.

The key file is created 0600 at the configured place outside the state directory (see
server/audit/signing.py), its public half beside it (`.pub`), and the public key is chained as an
`audit_key` record so any verifier can check signatures. `--rotate` replaces the key; the new
`audit_key` record is signed by the old key, which is what `audit verify` accepts as a rotation.

Both need an operator token (MLGATE_TOKEN in the operator's own shell, or the hidden prompt;
server/credentials.py), the first key too: an agent at its own shell must not be able to put its
key in charge of the checkpoints. A workspace gets its first operator token by the bootstrap of
`mlgate token create --role operator` (what `mlgate init` says to do first), so the token exists
before any key. The `audit_key` record names the operator and the credential they used; a refused
call writes nothing (no key file, no record).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from policies import Principal
from server.audit.signing import create_key, key_id, key_record, load_key, public_hex, record_key_location, replace_key
from server.audit.workspace import open_chain
from server.auth import TokenStore
from server.cli import add_workspace_option
from server.credentials import authenticate
from server.ledger import actor
from server.settings import Settings, load_settings
from server.workspace import check_is_workspace
from tools.errors import PolicyDenied

OPERATOR_ONLY = ("operator",)


def add_keygen(commands) -> None:
    keygen = commands.add_parser("keygen", help="create (or --rotate) the key that signs the audit chain's checkpoints (operator)")
    add_workspace_option(keygen)
    keygen.add_argument("--rotate", action="store_true", help="replace the existing key; the old key signs the rotation")
    keygen.epilog = "Needs an operator token issued by an operator (`mlgate token create --role operator`): set MLGATE_TOKEN in your own shell, or run at a terminal to be prompted."
    keygen.set_defaults(handler=keygen_command)


def keygen_command(args: argparse.Namespace) -> int:
    """Raises PolicyDenied without a valid operator token (nothing is written then), InvalidInput
    when a key exists without --rotate, IntegrityError when the old key is unreadable."""
    check_is_workspace(args.workspace)
    settings = load_settings(args.workspace)
    operator = _operator(settings)
    path = settings.audit_signing_key
    private = Ed25519PrivateKey.generate()
    if args.rotate:  # the new key's record is signed by the old key: that is what makes it a rotation
        previous = load_key(path)
        _announce(settings, key_record(private, previous), operator, functools.partial(replace_key, path, private))
    else:
        _announce(settings, key_record(private), operator, functools.partial(create_key, path, private))
    print(f"audit signing key {key_id(public_hex(private))} at {path} (public key {path}.pub), by {operator.name} (credential {operator.credential})", file=sys.stderr)
    print(public_hex(private))
    return 0


def _operator(settings: Settings) -> Principal:
    """The operator at the terminal. Raises PolicyDenied when no valid operator token is given; with
    no operator token in the state directory yet, the error says to bootstrap one first."""
    if not TokenStore(settings.state_dir).needs_operator("operator"):
        raise PolicyDenied(
            "the audit signing key needs an operator token and this workspace has none yet",
            f"create the first operator token with `mlgate token create --workspace {settings.workspace} --name YOU --role operator`, "
            "set MLGATE_TOKEN to it in your own shell, then run `mlgate audit keygen` again",
            rule_id="credential.missing",
        )
    principal = authenticate(settings.state_dir, OPERATOR_ONLY)
    assert principal is not None  # required=True: authenticate raises instead
    return principal


def _announce(settings: Settings, record: dict, operator: Principal, install: Callable[[], object]) -> None:
    """Installs the key file and chains the record that announces it under the chain's lock, so no
    writer signs a head with the new key before its record, or with the old key after it."""
    record_key_location(settings.audit_path, settings.audit_signing_key)
    chain = open_chain(settings)
    try:
        chain.append_prepared(install, {**record, **actor(operator), "action": "audit.keygen"})
    finally:
        chain.close()
