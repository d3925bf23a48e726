"""`mlgate models list`, `mlgate models archive MODEL VERSION` and `mlgate rollback MODEL [--alias
champion|candidate]`.

archive and rollback run the archive_version and rollback_alias tools' specs through the same
enforcement point as MCP calls (transport `cli`), so the same rules decide (humans and operators
with a token only, lifecycle stages) and the audit chain records the decision and the outcome.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from resources.model_cards import CARD_URI, MODELS_URI, SPECS as CARD_SPECS
from server.cli import add_workspace_option
from server.commands.card_text import card_lines
from server.commands.governed import add_principal_options, principal_of, read_governed, run_governed
from server.commands.insights import terminal_principal
from server.commands.terminal import printable  # card text: tags and artifacts in the tracking store
from server.registry import ModelRegistry
from server.settings import load_settings
from server.tracking import MlflowTracking
from tools.lifecycle import SPEC as ARCHIVE
from tools.rollback import SPEC as ROLLBACK


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="registered models, their versions and aliases")
    commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="every registered model with its aliases and versions")
    add_workspace_option(listing, governed=True)
    listing.set_defaults(handler=list_command)
    card = commands.add_parser("card", help="the model card of the champion version (else the candidate): what the model is for, how it measured, who approved it")
    card.add_argument("model", metavar="MODEL", help="registered model name (see `mlgate models list`)")
    add_workspace_option(card, governed=True)
    card.add_argument("--json", action="store_true", help="print the whole card as JSON")
    card.epilog = "With a human or operator token in MLGATE_TOKEN the card holds the sealed test-set figures; without one it is the card an agent reads."
    card.set_defaults(handler=card_command)
    archive = commands.add_parser("archive", help="retire a candidate version no alias points at (humans and operators)")
    archive.add_argument("model", metavar="MODEL", help="registered model name (see `mlgate models list`)")
    archive.add_argument("version", metavar="VERSION", help="the version to archive")
    add_workspace_option(archive, governed=True)
    add_principal_options(archive, "archives")
    archive.add_argument("--note", default=None, help="why, kept in the alias history")
    archive.set_defaults(handler=archive_command)
    rollback = subparsers.add_parser("rollback", help="point a model alias back at its previous version (humans and operators)")
    rollback.add_argument("model", metavar="MODEL", help="registered model name (see `mlgate models list`)")
    rollback.add_argument("--alias", choices=("champion", "candidate"), default="champion", help="alias to roll back (default: champion)")
    add_workspace_option(rollback, governed=True)
    add_principal_options(rollback, "rolls back")
    rollback.add_argument("--note", default=None, help="why, kept in the alias history")
    rollback.set_defaults(handler=rollback_command)


def _describe(model: dict[str, Any]) -> str:
    """A model as `models list` prints it: names, aliases and run ids escaped (a shared store holds
    models anyone with access registered)."""
    aliases = ", ".join(f"{printable(alias)} -> v{printable(version)}" for alias, version in model["aliases"].items()) or "no aliases"
    lines = [f"{printable(model['name'])}  ({aliases})"]
    lines += [f"    v{printable(v['version'])}  {printable(v['stage']):<9}  run {printable(v['run_id'])}{'  promoted' if v['promoted'] else ''}" for v in model["versions"]]
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
    """Raises PolicyDenied (exit 2) without a human/operator token in MLGATE_TOKEN or at the prompt."""
    principal = principal_of(args)
    arguments = {"model": args.model, "alias": args.alias, **({"note": args.note} if args.note else {})}
    payload = run_governed(args.workspace, ROLLBACK, arguments, principal)
    if payload is None:
        return 2
    print(f"{payload['model']}@{payload['alias']}: v{payload['from_version']} -> v{payload['to_version']} (run {payload['run_id']}) by {principal.name}")
    if payload.get("stage_changes"):
        print("  stages: " + ", ".join(f"v{c['version']} {c['from'] or 'none'} -> {c['to']}" for c in payload["stage_changes"]))
    return 0


def archive_command(args: argparse.Namespace) -> int:
    """Raises PolicyDenied (exit 2) without a human/operator token in MLGATE_TOKEN or at the prompt."""
    principal = principal_of(args)
    arguments = {"model": args.model, "version": args.version, **({"note": args.note} if args.note else {})}
    payload = run_governed(args.workspace, ARCHIVE, arguments, principal)
    if payload is None:
        return 2
    print(f"{payload['model']} v{payload['version']}: archived (run {payload['run_id']}) by {principal.name}")
    return 0


# The card resource's refusals name MCP reads and tools; at the terminal, the commands.
TERMINAL = {MODELS_URI: "`mlgate models list`", "promote(run_id, alias='candidate')": "`mlgate promote RUN --alias candidate`"}


def card_command(args: argparse.Namespace) -> int:
    """Reads the card as the `mlgate://models/{name}/card` resource serves it; exit 2 when refused
    or when there is no champion or candidate."""
    spec = next(spec for spec in CARD_SPECS if spec.uri == CARD_URI)
    text = read_governed(args.workspace, spec, {"name": args.model}, terminal_principal(args.workspace), TERMINAL)
    if text is None:
        return 2
    print(json.dumps(json.loads(text), indent=2, sort_keys=True) if args.json else "\n".join(map(printable, card_lines(json.loads(text)))))
    return 0
