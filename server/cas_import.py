"""Importing files into the content-addressed store (`mlgate data add`, the operator's side).

The files are read once, parsed with the store's reader (so only readable CSV/Parquet of one
schema gets in), hashed, written into a fresh temp directory inside data/shadow (0444 files, 0555
directory, fsynced) and renamed to the content hash in one atomic `rename`. When the hash's
directory already exists it is verified and reused: importing the same bytes twice is a no-op.
See server/cas.py for the layout and the hash definitions.

`import_dataset` is the whole import: the files into the store, then the import recorded in the
audit chain and the dataset registry (server/dataset_registry.py). Only a registered dataset can
be used; `add_dataset` alone only stores bytes.

A dataset whose column names break the column-name rule (policies/column_names.py: empty, over
256 characters, control characters, line separators, bidi controls, tag characters ...) is
refused before anything is written: such a name would travel into reports, model cards, configs and
tool results, where it can forge or hide text, and features.exclude could never name it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.column_names import MAX_CHARS, REFUSED_KINDS, refused_names
from policies.data import SHADOW_DIR
from server.cas import (
    DIR_FLAGS,
    FILE_NAME,
    MANIFEST,
    CasStore,
    Problem,
    StoredFile,
    SymlinkOnPath,
    content_hash_of,
    exists_at,
    manifest_text,
    read_entry,
    read_frame,
    schema_hash,
)
from tools.errors import IntegrityError, InvalidInput

HINT = "give CSV or Parquet files (names like credit_2024.csv or part-0.parquet), not directories or links"
READ_HINT = "fix the file as the reason says and import it again; CSV is read as UTF-8, comma-separated, with one header row"
SPLIT_HINT = "split the data into several smaller files of one schema (one dataset holds up to datasets.max_files of them)"


@dataclass(frozen=True)
class Added:
    content_hash: str
    schema_hash: str
    files: tuple[dict[str, Any], ...]
    rows: int
    reused: bool

    def record(self) -> dict[str, Any]:
        """What the registry and the audit chain record of the import: hashes, rows and the files
        by base name (the operator's directories are never recorded)."""
        files = [{"name": f["path"], "size": f["size"], "sha256": f["sha256"]} for f in self.files]
        return {"content_hash": self.content_hash, "schema_hash": self.schema_hash, "rows": self.rows, "files": files}


@dataclass(frozen=True)
class Imported:
    added: Added
    entry: dict[str, Any]
    registered: bool  # False: the registry already held a vouched entry for these bytes


def import_dataset(store: CasStore, registry: Any, audit: Any, paths: Sequence[Path | str], principal: Any) -> Imported:
    """Store the files as one dataset and record the import (audit chain, then registry) as
    made by `principal`. Idempotent. Raises InvalidInput, IntegrityError (see add_dataset, and
    an audit chain that cannot record) and OSError."""
    added = add_dataset(store, paths)
    entry, created = registry.register(added.record(), principal, audit)
    return Imported(added, entry, created)


def add_dataset(store: CasStore, paths: Sequence[Path | str]) -> Added:
    """Import files as one dataset (idempotent). Raises InvalidInput for unusable files and
    IntegrityError when data/shadow is a link or the hash's directory fails verification."""
    sources = read_sources(paths, store.max_files, store.max_file_bytes)
    try:
        frame = read_frame(sources)
    except ValueError as exc:
        raise InvalidInput(str(exc), READ_HINT, rule_id="data.add") from None
    _check_column_names([str(c) for c in frame.columns])
    digest = content_hash_of(sources)
    try:
        with store.open_dir(("data", "shadow"), create=True) as root_fd:
            published = _publish(root_fd, digest, sources)
    except SymlinkOnPath as exc:
        raise IntegrityError(f"{exc.args[0]} on the path {SHADOW_DIR} is a symbolic link", f"make {SHADOW_DIR} a plain directory of the workspace", rule_id="data.shadow_only") from None
    _verify_existing(store, digest, len(sources))
    entries = tuple(f.entry() for f in sorted(sources, key=lambda f: f.path))
    return Added(digest, schema_hash(frame), entries, int(len(frame)), not published)


def _spelling(name: str) -> str:
    """`name` in JSON escapes (ASCII only, so it cannot forge the message quoting it), a long one cut."""
    return json.dumps(name) if len(name) <= 80 else json.dumps(name[:60])[:-1] + f"...\" ({len(name)} characters)"


def _check_column_names(columns: list[str]) -> None:
    """Raises InvalidInput naming every column the column-name rule refuses (position, spelling)."""
    refused = refused_names(columns)
    if refused:
        listed = "; ".join(f"column {position} of {len(columns)}, {_spelling(name)}: {problem}" for position, name, problem in refused[:5])
        more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise InvalidInput(
            f"the dataset's column names cannot be imported ({listed}{more}): such a name could forge or hide text in the reports, "
            "model cards, configs and tool results that show it",
            f"rename the column in the file's header (1 to {MAX_CHARS} characters, none of: {REFUSED_KINDS}; zero-width and "
            "full-width characters are fine) and run `mlgate data add` again",
            rule_id="data.column_names",
        )


def read_sources(paths: Sequence[Path | str], max_files: int, max_file_bytes: int) -> list[StoredFile]:
    """Each file's bytes, read once; a file over `max_file_bytes` (datasets.max_file_bytes: what
    the store will read back) is refused unread. Raises InvalidInput (none, too many, too large,
    duplicate names, bad files)."""
    if not paths:
        raise InvalidInput("no files given", HINT, rule_id="data.add")
    if len(paths) > max_files:
        raise InvalidInput(f"{len(paths)} files, more than datasets.max_files ({max_files})", "import fewer, larger files", rule_id="data.add")
    sources = [_read_source(Path(p), max_file_bytes) for p in paths]
    names = [s.path for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"several files are named {duplicates}", "file names within one dataset must be unique; rename them", rule_id="data.add")
    return sources


def _read_source(path: Path, max_bytes: int) -> StoredFile:
    if not FILE_NAME.match(path.name):
        raise InvalidInput(f"{path.name!r} is not a CSV or Parquet file name", HINT + "; suffixes are lowercase .csv or .parquet", rule_id="data.add")
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise InvalidInput(f"{path} cannot be read", "check the path", rule_id="data.add") from None
    try:
        # A hard-linked source is fine: the copy written into the store has one link.
        read = read_entry(parent_fd, path.name, max_bytes=max_bytes, single_link=False)
    finally:
        os.close(parent_fd)
    if isinstance(read, Problem):
        raise InvalidInput(f"{path}: {read.detail}", SPLIT_HINT if read.kind == "too_large" else HINT, rule_id="data.add")
    return read


def _write_file(dir_fd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444, dir_fd=dir_fd)
    with open(fd, "wb", closefd=True) as stream:
        stream.write(data)
        stream.flush()
        os.fchmod(stream.fileno(), 0o444)
        os.fsync(stream.fileno())


@contextmanager
def _opened_dir(parent_fd: int, name: str) -> Iterator[int]:
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _remove_tree(parent_fd: int, name: str) -> None:
    """Remove a flat temp directory this process created (best effort: it is never a dataset)."""
    with contextlib.suppress(OSError), _opened_dir(parent_fd, name) as fd:
        os.fchmod(fd, 0o700)
        for entry in os.listdir(fd):
            os.unlink(entry, dir_fd=fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=parent_fd)


def _publish(root_fd: int, digest: str, sources: Sequence[StoredFile]) -> bool:
    """Write a temp dir inside data/shadow, then rename it to the hash. False: it existed."""
    if exists_at(root_fd, digest):
        return False
    temp = f".incoming-{secrets.token_hex(8)}"
    os.mkdir(temp, 0o700, dir_fd=root_fd)
    try:
        with _opened_dir(root_fd, temp) as temp_fd:
            for stored in [*sources, StoredFile(MANIFEST, 0, "", manifest_text(sources).encode("utf-8"))]:
                _write_file(temp_fd, stored.path, stored.data or b"")
            os.fchmod(temp_fd, 0o555)
            os.fsync(temp_fd)
        os.rename(temp, digest, src_dir_fd=root_fd, dst_dir_fd=root_fd)
    except OSError as exc:
        _remove_tree(root_fd, temp)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False  # another import of the same bytes won the rename
        raise
    except BaseException:
        _remove_tree(root_fd, temp)
        raise
    os.fsync(root_fd)
    return True


def _verify_existing(store: CasStore, digest: str, count: int) -> None:
    """Read back what is now under the hash (just written, or found there)."""
    try:
        store.verify(digest, max(store.max_files, count), registered=False)
    except IntegrityError as exc:
        raise IntegrityError(
            f"{SHADOW_DIR}/{digest} already exists but fails verification: {exc.reason}",
            "move that directory out of data/shadow (keep it as evidence) and run `mlgate data add` again",
            rule_id=exc.rule_id,
        ) from None
