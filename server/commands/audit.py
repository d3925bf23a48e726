"""`mlgate audit verify`, `tail` and `search`: read the workspace's audit chain, never write it."""

from __future__ import annotations

import argparse
import json
import sys

from server.approval_vouch import report_unvouched
from server.audit import AuditOptions, read_tail, verify
from server.audit.search import AuditQuery, parse_time, search
from server.audit.workspace import print_crosscheck
from server.cli import add_workspace_option
from server.commands.audit_keys import add_keygen
from server.dataset_registry import report_unvouched_datasets
from server.settings import load_settings, policy_limits


def register(subparsers) -> None:
    audit = subparsers.add_parser("audit", help="verify or read the audit chain")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    check = commands.add_parser("verify", help="check every record, the anchored head, witnesses and signatures; exit 1 on any damage")
    add_workspace_option(check, governed=True)  # a mistyped DIR must not read as "intact: no records"
    check.set_defaults(handler=verify_command)
    tail = commands.add_parser("tail", help="print the last records as JSON lines")
    add_workspace_option(tail, governed=True)
    tail.add_argument("-n", type=_positive, default=None, metavar="N", help="number of records (default: audit.tail_default)")
    tail.set_defaults(handler=tail_command)
    _add_search(commands)
    add_keygen(commands)


def _add_search(commands) -> None:
    find = commands.add_parser(
        "search", help="print the records of an intact chain that match every condition given, as JSON lines",
        epilog="Exit 0: the whole chain verified and the matches printed. Exit 1: the chain is damaged and nothing "
        "is printed (`mlgate audit verify` says where). A run's decision record shares its outcome's args_hash: "
        "--run ID, then --where args_hash=HASH.",
    )
    add_workspace_option(find, governed=True)
    find.add_argument("--kind", action="append", default=[], metavar="KIND", help="record kind (decision, outcome, read, ...); repeat for any of several")
    find.add_argument("--run", metavar="RUN_ID", help="records about one run (field run_id)")
    find.add_argument("--principal", metavar="NAME", help="records of one principal")
    find.add_argument("--tool", metavar="NAME", help="records of one tool")
    find.add_argument("--where", action="append", default=[], type=_field, metavar="FIELD=VALUE", help="a top-level field's value (numbers as written); repeatable")
    find.add_argument("--denied", action="store_true", help="only refusals: calls and reads denied, approvals denied")
    find.add_argument("--since", type=_time, metavar="TIME", help="from this ISO date or time (UTC unless it names a zone), inclusive")
    find.add_argument("--until", type=_time, metavar="TIME", help="before this ISO date or time, exclusive")
    find.set_defaults(handler=search_command)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _field(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    return key, value


def _time(text: str):
    when = parse_time(text)
    if when is None:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r} (e.g. 2026-12-01 or 2026-12-01T09:30:00Z)")
    return when


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


def search_command(args: argparse.Namespace) -> int:
    named = (("run_id", args.run), ("principal", args.principal), ("tool", args.tool))
    fields = tuple((key, value) for key, value in named if value is not None) + tuple(args.where)
    query = AuditQuery(frozenset(args.kind), fields, args.denied, args.since, args.until)
    report = search(load_settings(args.workspace).audit_path, query, _print_record)
    print(f"{report.matched} of {report.chain.count} records matched; {report.chain.summary()}", file=sys.stderr)
    return 0 if report.chain.ok else 1


def _print_record(record: dict) -> None:
    print(json.dumps(record, sort_keys=True, separators=(",", ":")))
