"""`mlgate init DIR` and `mlgate update DIR`: governed workspaces from the copier template."""

from __future__ import annotations

import argparse
from pathlib import Path

from server.git import GitRepo
from server.settings import load_settings
from server.workspace import UpdateResult, init_workspace, update_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser("init", help="create a governed workspace (git repository on main) from the template")
    init.add_argument("directory", metavar="DIR", help="new or empty directory")
    init.add_argument("--client", default="demo-bank", metavar="NAME", help="client name: lowercase letters, digits, underscores, dashes (default: demo-bank)")
    init.add_argument("--project", default="credit-default", metavar="NAME", help="project name: lowercase letters, digits, underscores, dashes (default: credit-default)")
    init.set_defaults(handler=run_init)
    update = subparsers.add_parser(
        "update",
        help="bring template changes into a workspace, as a commit on a review branch",
        description="Apply the current mlgate template to a workspace made by mlgate init. The result is one commit "
        "on the branch mlgate/template-<version>; main and the working tree are not touched. Exit status 1 when "
        "that commit carries conflicts to resolve before merging.",
    )
    update.add_argument("directory", metavar="DIR", help="workspace made by mlgate init, with no uncommitted changes")
    update.set_defaults(handler=run_update)


def run_init(args: argparse.Namespace) -> int:
    workspace = init_workspace(Path(args.directory), args.client, args.project)
    repo = GitRepo(workspace)
    print(f"Created governed workspace {workspace} (git repository, first commit {repo.head()[:12]} on main):")
    for path in repo.text("ls-files").splitlines():
        print(f"  {path}")
    print("Next steps:")
    print(f"  mlgate token create --workspace {workspace} --name YOU --role operator   # your operator token (shown once)")
    print(f"  mlgate standards set --workspace {workspace} --target COL --positive-class V [V ...] --time-column COL --pii COL ... --protected COL ...")
    print("                                            # name your data's label and columns (one acknowledged commit on main)")
    print(f"  mlgate data add {workspace} PATH.csv      # import a dataset; prints its content hash")
    print(f"  mlgate serve --workspace {workspace}       # stdio MCP server for your agent")
    print("  Agents read AGENTS.md there. The server serves only the standards and server config a human or operator")
    print("  acknowledged: after any other change on main, review it with `mlgate standards accept`.")
    return 0


def run_update(args: argparse.Namespace) -> int:
    workspace = Path(args.directory).resolve()
    base = load_settings(workspace).protected_ref
    result = update_workspace(workspace, base=base)
    if result.branch is None:
        print(f"Already up to date: template {result.new_version}.")
        return 0
    _print_update(workspace, result, base)
    return 1 if result.conflicts else 0


def _print_update(workspace: Path, result: UpdateResult, base: str) -> None:
    print(f"Template {result.old_version} -> {result.new_version}: one commit on branch {result.branch}")
    print(f"{base} and the working tree are unchanged. Files changed on the branch:")
    for path in result.changed:
        print(f"  {path}")
    if result.conflicts:
        print("CONFLICTS (template and workspace both changed these; resolve the <<<<<<< markers on the branch):")
        for path in result.conflicts:
            print(f"  {path}")
    print(f"Review: git -C {workspace} diff {base}...{result.branch}")
    print(f"Merge:  git -C {workspace} merge {result.branch}")
