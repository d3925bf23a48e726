"""`mlgate data add|list|verify`: the operator's side of the content-addressed dataset store.

`add WORKSPACE FILE...` imports CSV/Parquet files as one dataset and prints its content hash (the
only line on stdout, for scripts; details go to stderr). Importing the same bytes again reuses the
verified directory and prints the same hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.cas import CasStore
from server.cas_import import add_dataset
from server.cli import add_workspace_option
from server.settings import policy_limits
from server.standards import STANDARDS_PATH
from tools.errors import IntegrityError, InvalidInput


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="add, list and verify content-addressed datasets (operator)")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    add = commands.add_parser("add", help="import CSV/Parquet files into data/shadow/<content hash>/ and print the hash")
    add.add_argument("workspace", metavar="WORKSPACE", help="governed workspace (mlgate init DIR)")
    add.add_argument("paths", nargs="+", metavar="PATH", help="CSV or Parquet files, imported together as one dataset")
    add.set_defaults(handler=add_command)
    listed = commands.add_parser("list", help="print the content hashes in data/shadow")
    add_workspace_option(listed)
    listed.set_defaults(handler=list_command)
    check = commands.add_parser("verify", help="re-hash one dataset; exit 1 when it fails")
    add_workspace_option(check)
    check.add_argument("content_hash", metavar="HASH", help="64 lowercase hexadecimal characters")
    check.set_defaults(handler=verify_command)


def store_for(workspace: str) -> CasStore:
    """The store of a governed workspace. Raises InvalidInput for any other directory."""
    root = Path(workspace)
    if not (root / STANDARDS_PATH).is_file():
        raise InvalidInput(f"{workspace} is not a governed workspace (no {STANDARDS_PATH})", "create one with `mlgate init DIR`, or give the right path", rule_id="workspace.missing")
    return CasStore(root, int(policy_limits()["datasets"]["max_files"]))


def add_command(args: argparse.Namespace) -> int:
    added = add_dataset(store_for(args.workspace), [Path(p) for p in args.paths])
    state = "already present, verified and reused" if added.reused else "imported"
    print(f"{state}: {len(added.files)} file(s), {added.rows} rows; schema hash {added.schema_hash}", file=sys.stderr)
    print(added.content_hash)
    return 0


def list_command(args: argparse.Namespace) -> int:
    for content_hash in store_for(args.workspace).list_hashes():
        print(content_hash)
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Exit 0 when the dataset verifies, 1 when it fails verification (2: bad hash, no dataset)."""
    try:
        inspection = store_for(args.workspace).verify(args.content_hash)
    except IntegrityError as exc:
        print(f"dataset {args.content_hash} FAILED [{exc.rule_id}]: {exc.reason}\n  what to do: {exc.remediation}", file=sys.stderr)
        return 1
    print(f"dataset {args.content_hash} verified: {len(inspection.files)} file(s) match their content hash")
    return 0
