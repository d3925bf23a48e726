"""`mlgate insights reasoning|cost`: the query_reasoning and cost_report tools at the terminal, as
tables, and as a PNG chart with --plot FILE.

Both run through the enforcement point like an MCP call. With a human or operator token
(MLGATE_TOKEN) the caller may use --scope all; without one the terminal user is treated as an
agent would be: this project's history only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from policies import Principal
from server.auth import TokenStore
from server.cli import add_workspace_option
from server.commands.governed import os_user, run_governed
from server.commands.terminal import printable
from server.credentials import principal_for, read_token
from server.plots import bar_chart
from server.settings import load_settings
from tools.cost_report import SPEC as COST
from tools.query_reasoning import SPEC as REASONING

CHART = {
    "top_improvements": ("run_id", "improvement", "Largest improvements of the primary validation metric"),
    "confirm_rates_by_category": ("hypothesis_category", "confirm_rate", "Share of runs that confirmed, per hypothesis category"),
    "experiments_to_target": ("project", "experiments_to_target", "Experiments needed to reach the target"),
}


def register(subparsers: Any) -> None:
    insights = subparsers.add_parser("insights", help="what the run history says: reasoning queries and cost reports")
    commands = insights.add_subparsers(dest="insights_command", required=True, metavar="REPORT")
    reasoning = commands.add_parser("reasoning", help="largest improvements, confirm rates per hypothesis category, experiments to a target")
    reasoning.add_argument("question", choices=sorted(CHART), help="which question")
    reasoning.add_argument("--metric", default=None, help="validation metric for experiments_to_target (default: the primary metric)")
    reasoning.add_argument("--target", type=float, default=None, help="value to reach, for experiments_to_target")
    reasoning.add_argument("--max-results", type=int, default=10)
    cost = commands.add_parser("cost", help="tokens and estimated cost per project, agent or week")
    cost.add_argument("--group-by", choices=("project", "agent", "week"), default="week")
    for command, handler in ((reasoning, reasoning_command), (cost, cost_command)):
        add_workspace_option(command, governed=True)
        command.add_argument("--scope", choices=("project", "all"), default="project", help="all: every project of the tracking store (needs a human/operator token)")
        command.add_argument("--client", dest="client_name", default=None, help="with --scope all: only this client")
        command.add_argument("--project", dest="project_name", default=None, help="with --scope all: only this project")
        command.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="also draw the table as a PNG chart")
        command.set_defaults(handler=handler)


def terminal_principal(workspace: str) -> Principal:
    """The token's principal when MLGATE_TOKEN holds a valid one; otherwise the OS user as an agent."""
    token = read_token(prompt=False)
    found = principal_for(TokenStore(load_settings(workspace).state_dir), token) if token else None
    return found or Principal(os_user(), "agent")


def _arguments(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _cell(value: Any) -> str:
    """A float to 6 significant digits (0.00441481481481476 reads 0.00441481), text cut at 60 and
    printed escaped (reasoning is the agent's text, and MLflow params are a file it can edit)."""
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else printable(str(value)[:60])


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned text columns (keys of the first row)."""
    if not rows:
        return "(no runs)"
    keys = list(rows[0])
    cells = [[str(k) for k in keys]] + [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def _show(payload: dict[str, Any], plot: Path | None, chart: tuple[str, str, str]) -> int:
    print(format_table(payload["rows"]))
    if payload.get("truncated"):
        print(f"(read the newest {payload['runs_read']} runs only: configs/policy.yaml queries.max_runs)", file=sys.stderr)
    if plot is not None and payload["rows"]:
        print(f"plot: {bar_chart(payload['rows'], *chart, plot)}")
    return 0


def reasoning_command(args: argparse.Namespace) -> int:
    arguments = {"question": args.question, "scope": args.scope, "max_results": args.max_results, **_arguments(args, ("metric", "target", "client_name", "project_name"))}
    payload = run_governed(args.workspace, REASONING, arguments, terminal_principal(args.workspace))
    return 2 if payload is None else _show(payload, args.plot, CHART[args.question])


def cost_command(args: argparse.Namespace) -> int:
    arguments = {"group_by": args.group_by, "scope": args.scope, **_arguments(args, ("client_name", "project_name"))}
    payload = run_governed(args.workspace, COST, arguments, terminal_principal(args.workspace))
    return 2 if payload is None else _show(payload, args.plot, (args.group_by, "estimated_cost", f"Estimated cost per {args.group_by}"))
