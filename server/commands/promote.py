"""`mlgate promote RUN [--alias champion|candidate] [--dry-run]`: a human promotes at the terminal.

The promote tool's spec runs through the same enforcement point as an MCP call (transport `cli`),
so the same gates decide and the audit chain records decision and outcome. Promoting to champion
without an approval opens one bound to this exact promotion (even when other gates fail, so review
can start) and prints its id; a second human approves it (`mlgate approvals approve ID`: whoever
requested an approval cannot decide it), then the first runs `mlgate promote` again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from server.cli import add_workspace_option
from server.commands.governed import add_principal_options, for_terminal, principal_of
from server.enforcement import Enforcer
from server.ports import build_ports
from server.settings import load_settings
from tools.base import CallContext
from tools.promote import SPEC as PROMOTE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("promote", help="promote a run's model to candidate or champion (humans and operators; champion needs a second human's approval)")
    parser.add_argument("run_id", metavar="RUN", help="MLflow run id (32 lowercase hex)")
    parser.add_argument("--alias", choices=("champion", "candidate"), default="champion", help="alias to set (default: champion)")
    parser.add_argument("--dry-run", action="store_true", help="check every gate and print the receipt; register nothing")
    add_workspace_option(parser, governed=True)
    add_principal_options(parser, "promotes")
    parser.set_defaults(handler=promote_command)


def call_promote(workspace: str, arguments: dict[str, Any], principal: Any) -> tuple[bool, dict[str, Any]]:
    """(refused, payload) of one promote call through the enforcement point."""
    ports = build_ports(load_settings(workspace, transport="cli"))
    enforcer = Enforcer(ports.audit, ports.standards.policy_config)
    try:
        result = anyio.run(enforcer.call, PROMOTE, arguments, CallContext(principal=principal, transport="cli", ports=ports))
    finally:
        ports.audit.close()
    payload = dict(result.structured_content or {})
    return bool(result.is_error), for_terminal(payload) if result.is_error else payload


def _receipt_lines(payload: dict[str, Any]) -> list[str]:
    gates = (payload.get("gate_receipt") or {}).get("gates") or []
    window = payload.get("test_window") or {}
    measured = [f"  measured on the test window: {window['rows']} rows, {window['positives']} positive labels"] if {"rows", "positives"} <= set(window) else []
    return measured + [f"  {g['status']:<7} {g['gate']}: {g['reason']}" for g in gates]


def _print_refusal(payload: dict[str, Any]) -> None:
    print(f"mlgate: promotion refused: {payload.get('reason')}", file=sys.stderr)
    for line in _receipt_lines(payload):
        print(line, file=sys.stderr)
    if payload.get("approval_id"):
        print(f"  approval {payload['approval_id']} is {payload.get('approval_status')}: {payload.get('next_step')}", file=sys.stderr)
    else:
        print(f"  what to do: {payload.get('remediation')}", file=sys.stderr)


def promote_command(args: argparse.Namespace) -> int:
    """0 when promoted (or the dry run would be allowed); 2 when refused. Raises PolicyDenied
    (exit 2) without a human/operator credential."""
    principal = principal_of(args)
    arguments = {"run_id": args.run_id, "alias": args.alias, **({"dry_run": True} if args.dry_run else {})}
    refused, payload = call_promote(args.workspace, arguments, principal)
    if refused:
        _print_refusal(payload)
        return 2
    print("\n".join(_receipt_lines(payload)))
    if args.dry_run:
        print(f"dry run: {payload.get('model')}@{args.alias} would point at run {args.run_id}")
    else:
        print(f"{payload['model']}@{args.alias} -> version {payload['version']} (run {args.run_id}) by {principal.name}; model card: {payload.get('model_card', 'unchanged')}")
    return 0
