"""`mlgate token create|list|revoke`: the bearer tokens HTTP clients and approvers authenticate with.

Human and operator tokens are issued by an operator: the operator's own token is read from
MLGATE_TOKEN or a hidden prompt (server/credentials.py), never from an argument. The first operator
token of a state directory is the exception (bootstrap: `mlgate token create --name NAME --role
operator` while the audit chain holds no live operator token). Every creation and revocation is
recorded in the audit chain; a token without its creation record is refused everywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from policies import ROLES, Principal
from server.auth import TOKEN_PREFIX, TokenStore
from server.cli import add_workspace_option
from server.credentials import authenticate
from server.ledger import APPROVER_ROLES
from server.settings import load_settings
from server.workspace import check_is_workspace

OPERATOR_ONLY = ("operator",)
# what `token create` prints: a name of this shape is a token pasted by mistake, never repeated
TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{40,}")


def token_name(text: str) -> str:
    """A principal's name, refused when it is shaped like a token: it would be stored in tokens.json,
    recorded in the audit chain and printed by `token list` (argparse shows only this message)."""
    if TOKEN_SHAPE.fullmatch(text):
        raise argparse.ArgumentTypeError("that is a token, not a name: tokens are never passed as arguments (set MLGATE_TOKEN in your own shell); give the person's or client's name")
    return text


def register(subparsers) -> None:
    token = subparsers.add_parser("token", help="issue, list and revoke bearer tokens (HTTP clients, approvers)")
    commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = commands.add_parser(
        "create", help="issue a token; it is printed once and only its hash is kept",
        epilog="human and operator tokens need an operator's token in MLGATE_TOKEN (or at the prompt), except the first operator token",
    )  # fmt: skip
    create.add_argument("--name", required=True, type=token_name, help="the principal the token stands for (recorded in the audit)")
    create.add_argument("--role", required=True, choices=ROLES, help="the role of that principal")
    add_workspace_option(create, governed=True)
    create.set_defaults(handler=create_command)
    listing = commands.add_parser("list", help="list tokens (names, roles, creation times, whether the audit chain vouches for them; never secrets)")
    add_workspace_option(listing, governed=True)
    listing.set_defaults(handler=list_command)
    revoke = commands.add_parser("revoke", help="revoke a token; a running server refuses it at the next request")
    revoke.add_argument("name", type=token_name, help="name of the token to revoke")
    add_workspace_option(revoke, governed=True)
    revoke.set_defaults(handler=revoke_command)


def _store(args: argparse.Namespace) -> TokenStore:
    return TokenStore(load_settings(args.workspace).state_dir)


def _operator(args: argparse.Namespace) -> Principal | None:
    """The operator issuing or revoking. Raises PolicyDenied when no valid operator token is given."""
    return authenticate(load_settings(args.workspace).state_dir, OPERATOR_ONLY)


def create_command(args: argparse.Namespace) -> int:
    """Raises PolicyDenied (exit 2) for a human/operator token without an operator credential."""
    check_is_workspace(args.workspace)
    store = _store(args)
    needed = store.needs_operator(args.role)
    issuer = _operator(args) if needed else None
    bootstrap = args.role == "operator" and not needed
    token = store.create(args.name, args.role, issuer=issuer)
    print(token)
    how = " (bootstrap: the first operator token of this state directory)" if bootstrap else f" by {issuer.name}" if issuer else ""
    print(f"mlgate: token {args.name!r} ({args.role}) created{how}; it is shown only now, store it safely", file=sys.stderr)
    return 0


def list_command(args: argparse.Namespace) -> int:
    store = _store(args)
    for record in store.records():
        print(json.dumps({**record.public(), "vouched": store.vouched(record)}, sort_keys=True))
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    """Raises PolicyDenied (exit 2) for a live human/operator token without an operator credential."""
    store = _store(args)
    found = [r for r in store.records() if r.name == args.name]
    needed = bool(found) and found[0].role in APPROVER_ROLES and store.vouched(found[0])
    store.revoke(args.name, issuer=_operator(args) if needed else None)
    print(f"revoked {args.name}")
    return 0
