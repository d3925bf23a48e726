"""Backup and restore of a workspace's state directory (audit chain, approvals, tokens, registry,
PR records, dataset registry, MLflow sqlite store and artifacts).

A backup is a directory `mlgate-backup-<UTC time>/` holding `state/` (a copy of the state
directory), `MANIFEST.tsv` (`<relative path>\\t<size>\\t<sha256>` per file, sorted) and
`backup.json` (when, from where, the audit head it holds). It is taken while the server may be
running, so each kind of file is copied the way that stays consistent:

- the MLflow sqlite database through sqlite's online backup API (a transactionally consistent
  copy, never a torn page);
- the audit chain's anchor before the chain, and the chain only up to its last complete record:
  the copy's anchor never points past the copy's records;
- everything else byte for byte. Scratch (run directories, worktrees, lock and temp files) is left
  out: it is rebuilt on demand and holds nothing of record.

Restore checks every file against the manifest first, assembles the state directory beside its
final place, rewrites the MLflow artifact locations from the old state directory to the new one,
and only then renames it into place: a failed restore leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.files import fsync_dir
from tools.errors import IntegrityError, InvalidInput

MANIFEST = "MANIFEST.tsv"
INFO = "backup.json"
STATE = "state"
PREFIX = "mlgate-backup-"
FORMAT_VERSION = 1
SQLITE_NAME = "mlflow.db"
AUDIT_NAME = "audit.jsonl"
SKIPPED_DIRS = frozenset({"runs", "worktrees"})
CHUNK = 1 << 20
LOCATION_COLUMNS = frozenset({"source", "storage_location"})

Progress = Callable[[int, int, str], None]
Extra = Callable[[Path], dict[str, Any]]


@dataclass(frozen=True)
class BackupResult:
    path: Path
    files: int
    bytes: int


def _no_progress(done: int, total: int, name: str) -> None:
    return None


def _skipped(relative: Path) -> bool:
    """Scratch and lock files: rebuilt on demand, never part of the record."""
    if relative.parts and relative.parts[0] in SKIPPED_DIRS:
        return True
    name = relative.name
    return name == ".lock" or name.endswith((".lock", ".tmp", "-journal", "-wal", "-shm"))


def state_files(state_dir: Path) -> list[Path]:
    """Relative paths of the regular files a backup holds, sorted (symbolic links never followed)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(state_dir, followlinks=False):
        rel_root = Path(root).relative_to(state_dir)
        dirs[:] = sorted(d for d in dirs if not _skipped(rel_root / d))
        found.extend(rel_root / f for f in files if (Path(root) / f).is_file() and not (Path(root) / f).is_symlink() and not _skipped(rel_root / f))
    return sorted(found, key=lambda p: p.as_posix())


def _ordered(files: list[Path]) -> list[Path]:
    """The audit chain after its siblings (anchor first), so the copied anchor never runs ahead."""
    return sorted(files, key=lambda p: p.as_posix() == AUDIT_NAME)


def _copy_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _copy_complete_records(source: Path, target: Path) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: data.rfind(b"\n") + 1])


def _copy_one(source: Path, target: Path, relative: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if relative.as_posix() == SQLITE_NAME:
        _copy_sqlite(source, target)
    elif relative.as_posix() == AUDIT_NAME:
        _copy_complete_records(source, target)
    else:
        shutil.copyfile(source, target, follow_symlinks=False)
    shutil.copymode(source, target)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_line(root: Path, relative: Path) -> str:
    path = root / relative
    return f"{relative.as_posix()}\t{path.stat().st_size}\t{file_sha256(path)}\n"


def _audit_head(audit_copy: Path) -> dict[str, Any]:
    """seq and hash of the last record in the copied chain (what the backup vouches for)."""
    if not audit_copy.is_file():
        return {"seq": None, "hash": None}
    lines = audit_copy.read_bytes().splitlines()
    if not lines:
        return {"seq": None, "hash": None}
    last = json.loads(lines[-1])
    return {"seq": last.get("seq"), "hash": last.get("hash")}


def create_backup(state_dir: Path, dest: Path, stamp: str, *, workspace: Path, progress: Progress = _no_progress, extra: Extra | None = None) -> BackupResult:
    """Copy `state_dir` into `dest/mlgate-backup-<stamp>/`; `extra` adds its own part to the
    backup being assembled (server/backup_datasets.py) and returns what backup.json says of it.
    Raises InvalidInput when there is no state directory or the backup directory exists already
    (nothing is overwritten)."""
    if not (state_dir / AUDIT_NAME).is_file():
        raise InvalidInput(f"{state_dir} holds no mlgate state (no audit chain)", "pass the workspace whose state you want to back up with --workspace", rule_id="backup.no_state")
    target = Path(dest) / f"{PREFIX}{stamp}"
    if target.exists():
        raise InvalidInput(f"{target} exists already", "choose another destination or wait a second for a new timestamp", rule_id="backup.exists")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        result = _fill(state_dir, staging, workspace, progress, extra)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(target.parent)
    return BackupResult(target, result[0], result[1])


def _fill(state_dir: Path, staging: Path, workspace: Path, progress: Progress, extra: Extra | None) -> tuple[int, int]:
    (staging / STATE).mkdir(parents=True, mode=0o700)
    os.chmod(staging, 0o700)
    files = _ordered(state_files(state_dir))
    for done, relative in enumerate(files, start=1):
        _copy_one(state_dir / relative, staging / STATE / relative, relative)
        progress(done, len(files), relative.as_posix())
    lines = sorted(_manifest_line(staging / STATE, rel) for rel in files)
    (staging / MANIFEST).write_text("".join(lines))
    size = sum(int(line.split("\t")[1]) for line in lines)
    created = staging.name.removeprefix(".").removesuffix(".partial")  # the name it is renamed to
    info = {"format": FORMAT_VERSION, "created": created, "state_dir": str(state_dir), "workspace": str(workspace), "files": len(files), "bytes": size, "audit_head": _audit_head(staging / STATE / AUDIT_NAME),
            **(extra(staging) if extra is not None else {})}
    (staging / INFO).write_text(json.dumps(info, sort_keys=True, indent=2) + "\n")
    return len(files), size


# --- restore --------------------------------------------------------------------------------------


def _which_backup(given: Path) -> str:
    """What to pass instead: the newest backup inside `given` when it holds some (the DEST given to
    `mlgate backup`, not the directory it made)."""
    try:
        inside = sorted(p.name for p in given.iterdir() if p.name.startswith(PREFIX) and (p / INFO).is_file())
    except OSError:
        inside = []
    if not inside:
        return "pass a directory made by `mlgate backup`, named mlgate-backup-<time>"
    return f"it holds {len(inside)} backup(s): pass one of them, the newest is {given / inside[-1]}"


def read_info(backup: Path) -> dict[str, Any]:
    """The backup's backup.json. Raises InvalidInput when `backup` is not an mlgate backup."""
    info_path = Path(backup) / INFO
    if not info_path.is_file() or not (Path(backup) / MANIFEST).is_file():
        raise InvalidInput(f"{backup} is not an mlgate backup (no {INFO} / {MANIFEST})", _which_backup(Path(backup)), rule_id="backup.not_a_backup")
    info = json.loads(info_path.read_text())
    if info.get("format") != FORMAT_VERSION:
        raise InvalidInput(f"backup format {info.get('format')!r} is not supported", f"restore it with an mlgate that writes format {info.get('format')}", rule_id="backup.format")
    return info


def _manifest_entries(backup: Path) -> Iterator[tuple[str, int, str]]:
    for line in (backup / MANIFEST).read_text().splitlines():
        relative, size, digest = line.split("\t")
        if relative.startswith("/") or ".." in Path(relative).parts:
            raise IntegrityError(f"the manifest names {relative!r}, outside the backup", "the backup was altered: restore from another one", rule_id="backup.manifest")
        yield relative, int(size), digest


def check_backup(backup: Path, progress: Progress = _no_progress) -> list[str]:
    """Re-hash every file against the manifest. Raises IntegrityError on a missing, changed or
    extra file; returns the relative paths."""
    entries = list(_manifest_entries(backup))
    for done, (relative, size, digest) in enumerate(entries, start=1):
        path = backup / STATE / relative
        if not path.is_file() or path.is_symlink() or path.stat().st_size != size or file_sha256(path) != digest:
            raise IntegrityError(f"{relative} in the backup does not match its manifest", "the backup was altered or is incomplete: restore from another one", rule_id="backup.integrity")
        progress(done, len(entries), relative)
    listed = {e[0] for e in entries}
    extra = [p.as_posix() for p in state_files(backup / STATE) if p.as_posix() not in listed]
    if extra:
        raise IntegrityError(f"the backup holds files its manifest does not list: {extra[:5]}", "the backup was altered: restore from another one", rule_id="backup.integrity")
    return sorted(listed)


def restore_backup(backup: Path, state_dir: Path, progress: Progress = _no_progress) -> list[str]:
    """Restore `backup` into `state_dir`, which must not exist or be empty. Raises InvalidInput
    (target in use) or IntegrityError (damaged backup); nothing is written in either case."""
    backup, state_dir = Path(backup), Path(state_dir)
    info = read_info(backup)
    if state_dir.exists() and any(state_dir.iterdir()):
        raise InvalidInput(f"{state_dir} is not empty", "restore into a new state directory (MLGATE_STATE_DIR or a workspace without .mlgate/); move the old one aside first", rule_id="backup.target_not_empty")
    files = check_backup(backup, progress)
    staging = state_dir.with_name(f".{state_dir.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(backup / STATE, staging, symlinks=False)
        relocate_artifacts(staging / SQLITE_NAME, Path(info["state_dir"]), state_dir)
        if state_dir.exists():
            state_dir.rmdir()
        os.replace(staging, state_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(state_dir.parent)
    return files


def relocate_artifacts(database: Path, old_state: Path, new_state: Path) -> int:
    """Point every artifact location of the sqlite store from the old state directory to the new
    one (MLflow stores them as absolute URIs and paths). Returns the number of values changed."""
    if not database.is_file() or old_state == new_state:
        return 0
    pairs = [(old_state.as_uri(), new_state.as_uri()), (str(old_state), str(new_state))]
    connection = sqlite3.connect(database)
    try:
        with connection:
            return sum(_replace_prefix(connection, table, column, old, new) for table, column in _text_columns(connection) for old, new in pairs)
    finally:
        connection.close()


def _text_columns(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """The columns MLflow keeps artifact locations in (experiments, runs, model versions, logged
    models); params, tags and metrics are the record and stay exactly as they were."""
    tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = []
    for table in tables:
        for row in connection.execute(f'PRAGMA table_info("{table}")'):
            if "artifact" in row[1] or row[1] in LOCATION_COLUMNS:
                columns.append((table, row[1]))
    return columns


def _replace_prefix(connection: sqlite3.Connection, table: str, column: str, old: str, new: str) -> int:
    # A prefix followed by '/' or the end, so /a/state never rewrites /a/state-other.
    query = f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) WHERE "{column}" = ? OR substr("{column}", 1, ?) = ?'
    cursor = connection.execute(query, (new, len(old) + 1, old, len(old) + 1, old + "/"))
    return cursor.rowcount
