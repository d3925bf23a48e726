"""`mlgate prs`, `mlgate verify-pr BRANCH` and `mlgate hook NAME` (what the workspace hooks call).

prs lists the PR records open_pr wrote; verify-pr checks one branch the way the pre-merge hook
does (exit 1 with the problems when the cited run does not back the branch head).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from policies.provenance import branch_problem
from server.cli import add_workspace_option
from server.commands.terminal import printable
from server.git import GitRepo
from server.hooks import HOOK_NAMES, hook_main, verify_pr
from server.pr_providers import PrRecords
from server.settings import load_settings


def register(subparsers: Any) -> None:
    prs = subparsers.add_parser("prs", help="list the pull requests open_pr recorded")
    add_workspace_option(prs, governed=True)
    prs.add_argument("--json", action="store_true", help="one JSON record per line, descriptions included")
    prs.set_defaults(handler=list_command)
    verify = subparsers.add_parser("verify-pr", help="check that the run cited for BRANCH exists and its commit is the branch head")
    verify.add_argument("branch", metavar="BRANCH", help="feature branch, e.g. agent/my-change")
    add_workspace_option(verify, governed=True)
    verify.set_defaults(handler=verify_command)
    hook = subparsers.add_parser("hook", help="run a workspace git hook's checks (called from .githooks/)")
    hook.add_argument("name", choices=HOOK_NAMES, help="which hook")
    add_workspace_option(hook)
    hook.set_defaults(handler=hook_command)


def _line(record: dict[str, Any]) -> str:
    """One PR record as text: the title is the agent's, the record a state file (printed escaped)."""
    return printable(f"{record['id']:<12} {record['state']:<6} {record['branch']:<40} {record['commit'][:12]}  run {record['run_id']}  {record['title']}")


def list_command(args: argparse.Namespace) -> int:
    records = PrRecords(load_settings(args.workspace).state_dir / "prs").list()
    for record in records:
        print(json.dumps(record, sort_keys=True) if args.json else _line(record))
    if not records and not args.json:
        print("no pull requests recorded (open_pr records them)")
    return 0


UNBACKED = ("do not merge the branch as it is: run the experiment on its head (run_experiment, from a clean tree) "
            "and open the PR again with open_pr, citing that run")


def _report(problems: list[str], what: str) -> int:
    for problem in problems:
        print(f"mlgate {what}: {problem}", file=sys.stderr)
    return 1 if problems else 0


def verify_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    problems = verify_pr(GitRepo(settings.workspace), settings, args.branch)
    if not problems:
        print(f"{args.branch}: the cited run backs the branch head")
        return 0
    _report(problems, "verify-pr")
    if branch_problem(args.branch) is None:  # a name verify-pr refuses is no PR branch at all
        print(f"  what to do: {UNBACKED}", file=sys.stderr)
    return 1


def hook_command(args: argparse.Namespace) -> int:
    return hook_main(args.name, args.workspace)
