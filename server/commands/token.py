"""`mlgate token create|list|revoke`: the bearer tokens HTTP clients authenticate with."""

from __future__ import annotations

import argparse
import json
import sys

from policies import ROLES
from server.auth import TokenStore
from server.cli import add_workspace_option
from server.settings import load_settings


def register(subparsers) -> None:
    token = subparsers.add_parser("token", help="issue, list and revoke bearer tokens for HTTP clients")
    commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = commands.add_parser("create", help="issue a token; it is printed once and only its hash is kept")
    create.add_argument("--name", required=True, help="the principal the token stands for (recorded in the audit)")
    create.add_argument("--role", required=True, choices=ROLES, help="the role of that principal")
    add_workspace_option(create)
    create.set_defaults(handler=create_command)
    listing = commands.add_parser("list", help="list tokens (names, roles, creation times; never secrets)")
    add_workspace_option(listing)
    listing.set_defaults(handler=list_command)
    revoke = commands.add_parser("revoke", help="revoke a token; a running server refuses it at the next request")
    revoke.add_argument("name", help="name of the token to revoke")
    add_workspace_option(revoke)
    revoke.set_defaults(handler=revoke_command)


def _store(args: argparse.Namespace) -> TokenStore:
    return TokenStore(load_settings(args.workspace).state_dir)


def create_command(args: argparse.Namespace) -> int:
    token = _store(args).create(args.name, args.role)
    print(token)
    print(f"mlgate: token {args.name!r} ({args.role}) created; it is shown only now, store it safely", file=sys.stderr)
    return 0


def list_command(args: argparse.Namespace) -> int:
    for record in _store(args).records():
        print(json.dumps(record.public(), sort_keys=True))
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    _store(args).revoke(args.name)
    print(f"revoked {args.name}")
    return 0
