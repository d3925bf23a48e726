"""`mlgate approvals list|approve ID|deny ID`: humans and operators decide protected-field changes
at the terminal, out of band from any agent.

approve/deny run the decide_approval tool's spec through the same enforcement point as MCP calls
(transport `cli`), so the same rules decide and the audit chain records the decision and outcome.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from typing import Any

import anyio

from policies import Principal
from policies.config_change import canonical
from server.approvals import ApprovalStore
from server.cli import add_workspace_option
from server.enforcement import Enforcer
from server.ports import build_ports
from server.settings import load_settings
from tools.base import CallContext
from tools.decide_approval import SPEC as DECIDE

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _principal_name(text: str) -> str:
    if not NAME.match(text):
        raise argparse.ArgumentTypeError("names are 1-64 letters, digits, '.', '_', '@' or '-'")
    return text


def _os_user() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = f"uid-{os.getuid()}"
    return name if NAME.match(name) else f"uid-{os.getuid()}"


def register(subparsers: Any) -> None:
    approvals = subparsers.add_parser("approvals", help="list, approve or deny approvals of protected config changes")
    commands = approvals.add_subparsers(dest="approvals_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="pending approvals (all of them with --all)")
    add_workspace_option(listing)
    listing.add_argument("--all", action="store_true", help="include approved, denied and consumed approvals")
    listing.set_defaults(handler=list_command)
    for action, text in (("approve", "allow the exact change once"), ("deny", "refuse the exact change (final)")):
        command = commands.add_parser(action, help=text)
        command.add_argument("approval_id", metavar="ID", help="approval id, e.g. apr-0123456789ab")
        add_workspace_option(command)
        command.add_argument("--as", dest="as_name", type=_principal_name, default=None, metavar="NAME", help="who decides (default: the OS user)")
        command.add_argument("--role", choices=("human", "operator"), default="human", help="role of the decider (default: human)")
        command.add_argument("--note", default=None, help="why, kept with the approval")
        command.set_defaults(handler=decide_command, decision=action)


def _describe(record: dict[str, Any]) -> str:
    fields = ", ".join(f"{f['path']} {canonical(f['old'])} -> {canonical(f['new'])}" for f in record.get("protected_fields") or [])
    who = record["requested_by"]
    decided = f"  decided by {record['decided_by']}" if record.get("decided_by") else ""
    return f"{record['id']}  {record['status']:<8}  {record['created_at']}  requested by {who['name']} ({who['role']}){decided}\n    {fields}"


def list_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    records = ApprovalStore(settings.state_dir).list(None if args.all else "pending")
    if not records:
        print("no approvals" if args.all else "no pending approvals")
    for record in records:
        print(_describe(record))
    return 0


def decide_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace, transport="cli")
    ports = build_ports(settings)
    principal = Principal(args.as_name or _os_user(), args.role)
    arguments = {"approval_id": args.approval_id, "decision": args.decision, **({"note": args.note} if args.note else {})}
    enforcer = Enforcer(ports.audit, ports.standards.policy_config)
    try:
        result = anyio.run(enforcer.call, DECIDE, arguments, CallContext(principal=principal, transport="cli", ports=ports))
    finally:
        ports.audit.close()
    payload = result.structured_content or {}
    if result.is_error:
        print(f"mlgate: {payload.get('reason')}", file=sys.stderr)
        print(f"  what to do: {payload.get('remediation')}", file=sys.stderr)
        return 2
    print(f"{payload['status']} {payload['approval_id']} (change {payload['change_hash'][:12]}) by {principal.name}")
    return 0
