"""`mlgate approvals list|approve ID|deny ID`: humans and operators decide protected-field changes
at the terminal, out of band from any agent.

approve/deny need the decider's own token (MLGATE_TOKEN or the prompt, never an argument); the
decider's name and role come from it. `list` shows the status the audit chain vouches for and
flags approval files it does not back.

approve/deny run the decide_approval tool's spec through the same enforcement point as MCP calls
(transport `cli`), so the same rules decide and the audit chain records the decision and outcome.
"""

from __future__ import annotations

import argparse
from typing import Any

from policies.config_change import canonical
from server.approval_vouch import UNVOUCHED
from server.approvals import ApprovalStore
from server.cli import add_workspace_option
from server.commands.governed import add_principal_options, principal_of, run_governed
from server.commands.terminal import printable  # a requester's name is the caller's choice (MLGATE_PRINCIPAL)
from server.settings import load_settings
from tools.decide_approval import SPEC as DECIDE


def register(subparsers: Any) -> None:
    approvals = subparsers.add_parser("approvals", help="list, approve or deny approvals of protected config changes")
    commands = approvals.add_subparsers(dest="approvals_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="pending approvals (all of them with --all)")
    add_workspace_option(listing, governed=True)
    listing.add_argument("--all", action="store_true", help="include approved, denied and consumed approvals")
    listing.set_defaults(handler=list_command)
    for action, text in (("approve", "allow the exact change once"), ("deny", "refuse the exact change (final)")):
        command = commands.add_parser(action, help=text)
        command.add_argument("approval_id", metavar="ID", help="approval id, e.g. apr-0123456789ab")
        add_workspace_option(command, governed=True)
        add_principal_options(command, "decides")
        command.add_argument("--note", default=None, help="why, kept with the approval")
        command.set_defaults(handler=decide_command, decision=action)


def _describe(record: dict[str, Any]) -> str:
    """One approval as the list shows it. The file may be one nobody vouched for (written by hand,
    any shape): every field is read as what it should be, or shown as missing, never trusted."""
    changes = record.get("protected_fields")
    fields = ", ".join(f"{printable(f.get('path'))} {canonical(f.get('old'))} -> {canonical(f.get('new'))}" for f in (changes if isinstance(changes, list) else []) if isinstance(f, dict))
    who = record.get("requested_by") if isinstance(record.get("requested_by"), dict) else {}
    decided = f"  decided by {printable(record['decided_by'])}" if record.get("decided_by") and record.get("status") != UNVOUCHED else ""
    problem = f"\n    NOT VOUCHED BY THE AUDIT CHAIN: {printable(record['vouch_problem'])}" if record.get("vouch_problem") else ""
    head = f"{printable(record.get('id'))}  {printable(record.get('status')):<8}  {printable(record.get('created_at'))}  requested by {printable(who.get('name'))} ({printable(who.get('role'))})"
    return f"{head}{decided}\n    {fields}{problem}"


def list_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    records = ApprovalStore(settings.state_dir).list(None if args.all else "pending")
    if not records:
        print("no approvals" if args.all else "no pending approvals")
    for record in records:
        print(_describe(record))
    return 0


def decide_command(args: argparse.Namespace) -> int:
    """Raises PolicyDenied (exit 2) without a human/operator token in MLGATE_TOKEN or at the prompt."""
    principal = principal_of(args)
    arguments = {"approval_id": args.approval_id, "decision": args.decision, **({"note": args.note} if args.note else {})}
    payload = run_governed(args.workspace, DECIDE, arguments, principal)
    if payload is None:
        return 2
    print(f"{payload['status']} {payload['approval_id']} (change {payload['change_hash'][:12]}) by {principal.name} ({principal.role}, token {principal.credential})")
    return 0
