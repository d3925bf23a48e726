"""`mlgate` command line. Each command group lives in server/commands/<name>.py and exposes
`register(subparsers)`; a handler returns the process exit code."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from server.redact import install_log_redaction
from server.workspace import check_is_workspace
from tools.errors import GovernanceError

COMMAND_MODULES = ("workspace", "standards", "data", "serve", "token", "approvals", "audit", "demo", "prs", "models", "backup", "ui", "promote", "insights", "drift", "tracking")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlgate", description="Governed MCP server for ML experimentation.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"server.commands.{name}").register(subparsers)
    return parser


def add_workspace_option(parser: argparse.ArgumentParser, *, governed: bool = False) -> None:
    """`--workspace DIR`. governed: main refuses a DIR that `mlgate init` did not make before the
    handler runs, so a mistyped path is an error, not an empty answer and a stray state directory."""
    parser.add_argument("--workspace", default=".", metavar="DIR", help="governed workspace (default: current directory)")
    if governed:
        parser.set_defaults(governed_workspace=True)


def main(argv: Sequence[str] | None = None) -> int:
    # credentials in a URI (tracking store, git remote) never reach a log line or a traceback
    install_log_redaction()
    # MLflow's on-import "agent skills" hint (server/mlflow_import.py QUIET_MLFLOW), silenced before any
    # command imports MLflow: even `from mlflow.exceptions import ...` runs mlflow/__init__.py.
    os.environ["MLFLOW_DISABLE_AGENT_HINT"] = "1"
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "governed_workspace", False):
            check_is_workspace(args.workspace)
        return int(args.handler(args) or 0)
    except GovernanceError as exc:
        print(f"mlgate: {exc.reason}", file=sys.stderr)
        if exc.remediation:
            print(f"  what to do: {exc.remediation}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a setting out of bounds; the values are not repeated (they may be secrets)
        print(f"mlgate: invalid settings ({exc.title})", file=sys.stderr)
        for error in exc.errors(include_input=False, include_url=False):
            print(f"  {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        print("  what to do: correct them in <state_dir>/server.yaml or the MLGATE_* environment", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line and 128+SIGINT, not a traceback
        print("mlgate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mlgate audit search ... | head`: the reader has all it wanted
        _discard_stdout()
        return 1
    except OSError as exc:  # a path given that cannot be made or read (under a file, on /proc, no permission)
        print(f"mlgate: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        print("  what to do: check the paths given (a directory where one is expected, permissions), then run the command again", file=sys.stderr)
        return 2


def _discard_stdout() -> None:
    """Points stdout at /dev/null, so the interpreter's last flush does not fail again on exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
