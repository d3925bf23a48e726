"""`mlgate backup DEST` and `mlgate restore SRC --workspace DIR`: copy a workspace's state
directory out (timestamped, consistent while the server runs) and back into a new state directory.

Both are recorded in the audit chain: the backup after it is taken (so the chain says a copy
exists, and up to which record), the restore in the restored chain, which is verified first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from server.audit import AuditChain, verify
from server.backup import create_backup, read_info, restore_backup
from server.cli import add_workspace_option
from server.clock import SystemClock
from server.commands.governed import os_user
from server.settings import load_settings
from tools.errors import InvalidInput

BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser("backup", help="copy the workspace's state (audit, approvals, tokens, registry, MLflow) to DEST")
    backup.add_argument("dest", metavar="DEST", help="directory the timestamped backup is created in")
    add_workspace_option(backup, governed=True)
    backup.set_defaults(handler=backup_command)
    restore = subparsers.add_parser("restore", help="restore a backup into the workspace's (new, empty) state directory")
    restore.add_argument("source", metavar="SRC", help="a mlgate-backup-<time> directory made by `mlgate backup`")
    add_workspace_option(restore, governed=True)
    restore.set_defaults(handler=restore_command)


def progress_line(done: int, total: int, name: str, width: int = BAR_WIDTH) -> str:
    """`[#####.....]  12/40 name` (pure, so it is tested without a terminal)."""
    filled = width if total == 0 else width * done // total
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total} {name[:40]}"


def terminal_progress(stream: Any = sys.stderr) -> Any:
    """A progress callback drawing one updating line on a terminal, and nothing elsewhere."""
    if not stream.isatty():
        return lambda done, total, name: None

    def draw(done: int, total: int, name: str) -> None:
        stream.write("\r\033[K" + progress_line(done, total, name))
        if done == total:
            stream.write("\n")
        stream.flush()

    return draw


def _record(audit_path: Path, tool: str, details: dict[str, Any]) -> None:
    chain = AuditChain(audit_path)
    try:
        chain.append({"kind": "outcome", "status": "ok", "tool": tool, "principal": os_user(), "role": "operator", "transport": "cli", **details})
    finally:
        chain.close()


def backup_destination(dest: str) -> Path:
    """DEST resolved: a directory, or a path to create one at. Raises InvalidInput for a file."""
    path = Path(dest).resolve()
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"{dest} exists and is not a directory", "give a directory (new or existing) for DEST; the backup is created in it as mlgate-backup-<time>/", rule_id="backup.destination")
    return path


def backup_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace, transport="cli")
    destination = backup_destination(args.dest)
    if settings.tracking_uri:
        print(f"mlgate: the tracking store {settings.tracking_uri.split('://', 1)[0]}:// is external: back it up with its own tools", file=sys.stderr)
    stamp = SystemClock().now().strftime("%Y%m%dT%H%M%S%fZ")
    result = create_backup(settings.state_dir, destination, stamp, workspace=settings.workspace, progress=terminal_progress())
    head = read_info(result.path)["audit_head"]
    _record(settings.audit_path, "backup", {"backup": result.path.name, "backup_seq": head["seq"], "backup_hash": head["hash"]})
    print(f"backed up {result.files} files ({result.bytes} bytes, audit up to record {head['seq']}) to {result.path}")
    return 0


def restore_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace, transport="cli")
    source = Path(args.source).resolve()
    files = restore_backup(source, settings.state_dir, progress=terminal_progress())
    report = verify(settings.audit_path)
    print(report.summary())
    if not report.ok:
        print(f"mlgate: restored {len(files)} files to {settings.state_dir}, but the audit chain does not verify", file=sys.stderr)
        return 1
    _record(settings.audit_path, "restore", {"backup": source.name, "backup_seq": read_info(source)["audit_head"]["seq"]})
    print(f"restored {len(files)} files from {source.name} to {settings.state_dir}")
    return 0
