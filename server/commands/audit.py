"""`mlgate audit verify` and `mlgate audit tail`: read the workspace's audit chain, never write it."""

from __future__ import annotations

import argparse
import json

from server.approval_vouch import report_unvouched
from server.audit import AuditOptions, read_tail, verify
from server.audit.workspace import print_crosscheck
from server.cli import add_workspace_option
from server.commands.audit_keys import add_keygen
from server.dataset_registry import report_unvouched_datasets
from server.settings import load_settings, policy_limits


def register(subparsers) -> None:
    audit = subparsers.add_parser("audit", help="verify or read the audit chain")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    check = commands.add_parser("verify", help="check every record, the anchored head, witnesses and signatures; exit 1 on any damage")
    add_workspace_option(check)
    check.set_defaults(handler=verify_command)
    tail = commands.add_parser("tail", help="print the last records as JSON lines")
    add_workspace_option(tail)
    tail.add_argument("-n", type=_positive, default=None, metavar="N", help="number of records (default: audit.tail_default)")
    tail.set_defaults(handler=tail_command)
    add_keygen(commands)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def verify_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    report = verify(settings.audit_path)
    print(report.summary())
    vouched = report_unvouched(settings.state_dir)
    datasets = report_unvouched_datasets(settings.state_dir, settings.audit_path)
    witnessed = print_crosscheck(settings)
    return 0 if report.ok and vouched and datasets and witnessed else 1


def tail_command(args: argparse.Namespace) -> int:
    options = AuditOptions.from_config(policy_limits().get("audit", {}))
    count = min(args.n or options.tail_default, options.tail_max)
    for record in read_tail(load_settings(args.workspace).audit_path, count):
        print(json.dumps(record, sort_keys=True, separators=(",", ":")))
    return 0
