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
from server.backup_datasets import check_datasets, copy_datasets, restore_datasets
from server.cli import add_workspace_option
from server.clock import SystemClock
from server.commands.governed import os_user
from server.dataset_registry import DatasetRegistry
from server.settings import load_settings
from tools.errors import InvalidInput

BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser("backup", help="copy the workspace's state (audit, approvals, tokens, registry, MLflow) and its registered datasets to DEST")
    backup.add_argument("dest", metavar="DEST", help="directory the timestamped backup is created in")
    backup.add_argument("--without-datasets", action="store_true", help="leave out the registered datasets under data/shadow (back them up with the workspace's own storage)")
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


def terminal_progress(stream: Any = None) -> Any:
    """A progress callback drawing one updating line on a terminal, and nothing elsewhere. The
    stream is sys.stderr as it is at the call (bound at import, it was a stream since replaced)."""
    stream = sys.stderr if stream is None else stream
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
    extra = None if args.without_datasets else _with_datasets(settings)
    result = create_backup(settings.state_dir, destination, stamp, workspace=settings.workspace, progress=terminal_progress(), extra=extra)
    info = read_info(result.path)
    head = info["audit_head"]
    _record(settings.audit_path, "backup", {"backup": result.path.name, "backup_seq": head["seq"], "backup_hash": head["hash"], "datasets": info.get("datasets", [])})
    print(f"backed up {result.files} files ({result.bytes} bytes, audit up to record {head['seq']}){_datasets_text(info, args.without_datasets)} to {result.path}")
    for missing in info.get("datasets_missing", []):
        print(f"mlgate: registered dataset {missing} is not under data/shadow: it is not in the backup", file=sys.stderr)
    return 0


def _with_datasets(settings: Any) -> Any:
    """The backup's dataset part: every dataset the registry lists (vouched or not: the backup
    copies what is there; restore and use verify it)."""
    hashes = list(DatasetRegistry(settings.state_dir, settings.audit_path).entries()[0])

    def add(staging: Path) -> dict[str, Any]:
        copied, missing, size = copy_datasets(settings.workspace, hashes, staging)
        return {"datasets": copied, "datasets_missing": missing, "dataset_bytes": size}

    return add


def _datasets_text(info: dict[str, Any], left_out: bool) -> str:
    if left_out:
        return ", datasets left out"
    return f" and {len(info.get('datasets', []))} datasets ({info.get('dataset_bytes', 0)} bytes)"


def restore_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace, transport="cli")
    source = Path(args.source).resolve()
    read_info(source)
    held = check_datasets(source)  # before anything is written: a damaged backup restores nothing
    files = restore_backup(source, settings.state_dir, progress=terminal_progress())
    report = verify(settings.audit_path)
    print(report.summary())
    if not report.ok:
        print(f"mlgate: restored {len(files)} files to {settings.state_dir}, but the audit chain does not verify", file=sys.stderr)
        return 1
    datasets = restore_datasets(source, settings.workspace, held)
    _record(settings.audit_path, "restore", {"backup": source.name, "backup_seq": read_info(source)["audit_head"]["seq"], "datasets": datasets})
    copied = f"{len(datasets)} of the backup's {len(held)} datasets copied into data/shadow (the others were there)" if held else "the backup holds no datasets: copy data/shadow/ from where it is kept"
    print(f"restored {len(files)} files from {source.name} to {settings.state_dir}; {copied}")
    return 0
