"""`mlgate models list` and `mlgate rollback MODEL [--alias champion|candidate]`.

rollback runs the rollback_alias tool's spec through the same enforcement point as MCP calls
(transport `cli`), so the same rules decide (humans and operators only) and the audit chain
records the decision and the outcome.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from policies import Principal
from server.cli import add_workspace_option
from server.commands.approvals import _os_user, _principal_name
from server.enforcement import Enforcer
from server.ports import build_ports
from server.registry import ModelRegistry
from server.settings import load_settings
from server.tracking import MlflowTracking
from tools.base import CallContext
from tools.rollback import SPEC as ROLLBACK


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="registered models, their versions and aliases")
    commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="every registered model with its aliases and versions")
    add_workspace_option(listing)
    listing.set_defaults(handler=list_command)
    rollback = subparsers.add_parser("rollback", help="point a model alias back at its previous version (humans and operators)")
    rollback.add_argument("model", metavar="MODEL", help="registered model name (see `mlgate models list`)")
    rollback.add_argument("--alias", choices=("champion", "candidate"), default="champion", help="alias to roll back (default: champion)")
    add_workspace_option(rollback)
    rollback.add_argument("--as", dest="as_name", type=_principal_name, default=None, metavar="NAME", help="who rolls back (default: the OS user)")
    rollback.add_argument("--role", choices=("human", "operator"), default="human", help="role of the caller (default: human)")
    rollback.add_argument("--note", default=None, help="why, kept in the alias history")
    rollback.set_defaults(handler=rollback_command)


def _describe(model: dict[str, Any]) -> str:
    aliases = ", ".join(f"{alias} -> v{version}" for alias, version in model["aliases"].items()) or "no aliases"
    lines = [f"{model['name']}  ({aliases})"]
    lines += [f"    v{v['version']}  run {v['run_id']}{'  promoted' if v['promoted'] else ''}" for v in model["versions"]]
    return "\n".join(lines)


def list_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    registry = ModelRegistry(MlflowTracking(settings.mlflow_uri, settings.state_dir / "mlartifacts"), settings.state_dir / "registry")
    models = registry.list_models()
    if not models:
        print("no registered models")
    for model in models:
        print(_describe(model))
    return 0


def rollback_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace, transport="cli")
    ports = build_ports(settings)
    principal = Principal(args.as_name or _os_user(), args.role)
    arguments = {"model": args.model, "alias": args.alias, **({"note": args.note} if args.note else {})}
    enforcer = Enforcer(ports.audit, ports.standards.policy_config)
    try:
        result = anyio.run(enforcer.call, ROLLBACK, arguments, CallContext(principal=principal, transport="cli", ports=ports))
    finally:
        ports.audit.close()
    payload = result.structured_content or {}
    if result.is_error:
        print(f"mlgate: {payload.get('reason')}", file=sys.stderr)
        print(f"  what to do: {payload.get('remediation')}", file=sys.stderr)
        return 2
    print(f"{payload['model']}@{payload['alias']}: v{payload['from_version']} -> v{payload['to_version']} (run {payload['run_id']}) by {principal.name}")
    return 0
