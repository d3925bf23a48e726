"""Content-addressed datasets: `data/shadow/<content hash>/` inside the workspace.

A dataset directory holds the imported data files, flat, named `[A-Za-z0-9][A-Za-z0-9._-]*`
ending in `.csv` or `.parquet`, and `manifest.tsv`. Files are read-only (0444), the directory
0555; nothing else may be there: no subdirectories, symbolic links or hard-linked files.

Content hash: the lowercase hex SHA-256 of the manifest, the UTF-8 text with one line per data
file, sorted by relative path (code point order, which is UTF-8 byte order):

    <relative path>\\t<size in bytes>\\t<lowercase hex SHA-256 of the file's bytes>\\n

`manifest.tsv` holds exactly that text, so its own SHA-256 is the directory's name.

Schema hash: the lowercase hex SHA-256 of the UTF-8 canonical JSON (no spaces: separators `,`
and `:`) of the list of `[column name, dtype]` pairs sorted by column name, where dtype is the
string pandas reports (`str(frame[column].dtype)`, e.g. `int64`, `float64`, `str`) after reading
with READER (server/cas_frames.py; CSV: comma separated, UTF-8, whole-file type inference;
Parquet: pyarrow). Several files of one dataset must have the same columns and dtypes; their rows
are concatenated in manifest order. Files pandas would misread are refused (server/cas_frames.py:
a CSV header naming a column twice, rows with one more field than the header, nested Parquet
columns).

Verification opens data, shadow and the dataset directory with O_NOFOLLOW, each relative to its
parent's descriptor, so no symbolic link is ever followed. Each file is opened with O_NOFOLLOW,
fstat must show a regular file with exactly one link, and its bytes are read ONCE: those bytes are
hashed and those same bytes are parsed (no check-then-swap). Integrity is decided by the pure
rules `data.shadow_only` and `data.integrity` (policies/data.py).

Bytes that verify are not yet a dataset: using one (`verify`, `load`, `open`) also needs the
`data.registered` rule, which holds only for a content hash an operator imported with
`mlgate data add` (server/cas_import.py), as the dataset registry and the audit chain record it
(server/dataset_registry.py). A directory made by hand or copied from another workspace is refused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from policies import evaluate
from policies.data import SHADOW_DIR, integrity, registered, shadow_only
from server.cas_frames import dtypes_of, read_frame, schema_hash
from tools.errors import IntegrityError, InvalidInput, NotFound, PolicyDenied

CONTENT_HASH = re.compile(r"^[0-9a-f]{64}\Z")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(csv|parquet)\Z")
MANIFEST = "manifest.tsv"
BYTE_RULES = (shadow_only, integrity)
USE_RULES = (shadow_only, integrity, registered)
NO_REGISTRY = {"registered": False, "audited": False, "detail": "this workspace's store has no dataset registry"}
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class StoredFile:
    """One file of a dataset, with the bytes that were hashed (never shown in reprs; None when
    the caller only verified and did not keep them)."""

    path: str
    size: int
    sha256: str
    data: bytes | None = field(repr=False, compare=False)

    def entry(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Problem:
    kind: str  # symlink | hardlink | not_regular | unreadable | extra | missing | modified | manifest | too_many_files | name
    path: str
    detail: str


def _undecodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True)
class Inspection:
    """What verification found; `facts()` is the input of the data.* rules."""

    requested: str
    location: str
    symlinked: bool
    recomputed: str | None
    files: tuple[StoredFile, ...] = ()
    problems: tuple[Problem, ...] = ()
    registration: dict[str, Any] = field(default_factory=lambda: dict(NO_REGISTRY))

    def facts(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "location": self.location,
            "symlinked": self.symlinked,
            "recomputed": self.recomputed,
            "problems": [asdict(p) for p in self.problems],
            "files": [f.entry() for f in self.files],
            "registration": dict(self.registration),
        }


@dataclass(frozen=True)
class LoadedDataset:
    """A verified dataset: the frame parsed from the verified bytes and its manifest."""

    frame: pd.DataFrame = field(repr=False)
    manifest: dict[str, Any]


# --- pure definitions -------------------------------------------------------------------------


def check_content_hash(value: Any) -> str:
    """Raises InvalidInput unless `value` is 64 lowercase hex characters."""
    if isinstance(value, str) and CONTENT_HASH.match(value):
        return value
    raise InvalidInput(
        "a dataset is named by its content hash: exactly 64 lowercase hexadecimal characters (SHA-256); paths are not accepted",
        "use a hash from the mlgate://datasets resource (or the one `mlgate data add` printed)",
        rule_id="data.hash_format",
    )


def manifest_text(files: Sequence[StoredFile]) -> str:
    return "".join(f"{f.path}\t{f.size}\t{f.sha256}\n" for f in sorted(files, key=lambda f: f.path))


def content_hash_of(files: Sequence[StoredFile]) -> str:
    return hashlib.sha256(manifest_text(files).encode("utf-8")).hexdigest()


def parse_manifest(data: bytes) -> dict[str, tuple[int, str]]:
    """{path: (size, sha256)}. Raises ValueError on anything but well-formed manifest lines."""
    entries: dict[str, tuple[int, str]] = {}
    for line in data.decode("utf-8").splitlines():
        path, size, digest = line.split("\t")
        if not FILE_NAME.match(path) or not size.isdigit() or not CONTENT_HASH.match(digest) or path in entries:
            raise ValueError(f"bad manifest line for {path[:80]!r}")
        entries[path] = (int(size), digest)
    return entries


def raise_unless_verified(inspection: Inspection, rules: Sequence[Any] = USE_RULES) -> Inspection:
    """The data.shadow_only, data.integrity and (by default) data.registered rules over the
    inspection. Raises IntegrityError (PolicyDenied for an unregistered dataset)."""
    verdict = evaluate(tuple(rules), inspection.facts(), {})
    if not verdict.allowed:
        deciding = verdict.deciding
        error = PolicyDenied if deciding.rule_id == registered.id else IntegrityError
        raise error(deciding.reason, deciding.remediation, rule_id=deciding.rule_id)
    return inspection


# --- file system primitives -------------------------------------------------------------------


def _read_fd(fd: int) -> bytes:
    with open(fd, "rb", buffering=0, closefd=False) as stream:
        return stream.readall()


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def read_entry(dir_fd: int, name: str, *, single_link: bool = True, keep: bool = True) -> StoredFile | Problem:
    """Open `name` without following links and read it once, or say why not. `single_link`:
    a file with other hard links is refused (another name could change its bytes). `keep`: hold
    on to the bytes (to parse them); verification alone drops them after hashing."""
    try:
        if _is_link(dir_fd, name):
            return Problem("symlink", name, f"{name} is a symbolic link")
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        kind = "symlink" if exc.errno == errno.ELOOP else "unreadable"
        return Problem(kind, name, f"{name} cannot be opened ({errno.errorcode.get(exc.errno or 0, 'error')})")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return Problem("not_regular", name, f"{name} is not a regular file")
        if single_link and info.st_nlink != 1:
            return Problem("hardlink", name, f"{name} has {info.st_nlink} hard links (another name could change its bytes)")
        data = _read_fd(fd)
    finally:
        os.close(fd)
    return StoredFile(name, len(data), hashlib.sha256(data).hexdigest(), data if keep else None)


def _manifest_problems(requested: str, manifest: StoredFile | None, files: Sequence[StoredFile], names: set[str]) -> list[Problem]:
    """Extra, missing and modified files against a manifest that hashes to the requested hash."""
    if manifest is None:
        return [] if MANIFEST in names else [Problem("manifest", MANIFEST, f"{MANIFEST} is missing")]
    if manifest.sha256 != requested:
        return [Problem("manifest", MANIFEST, f"{MANIFEST} was changed (it no longer hashes to the content hash)")]
    try:
        expected = parse_manifest(manifest.data)
    except (ValueError, UnicodeDecodeError):
        return [Problem("manifest", MANIFEST, f"{MANIFEST} is malformed")]
    problems = [Problem("missing", p, f"{p} is missing") for p in sorted(expected) if p not in names]
    for stored in files:
        if stored.path not in expected:
            problems.append(Problem("extra", stored.path, f"{stored.path} was not imported (extra file)"))
        elif expected[stored.path] != (stored.size, stored.sha256):
            problems.append(Problem("modified", stored.path, f"{stored.path} was changed after import (SHA-256 differs)"))
    return problems


class SymlinkOnPath(Exception):
    """A component of a path opened by CasStore.open_dir is a symbolic link."""


# --- the store --------------------------------------------------------------------------------


class CasStore:
    """The workspace's dataset store. `max_files` caps the entries one dataset may have;
    `registry` (server/dataset_registry.py) says which hashes an operator imported. A store
    without one registers nothing, so it can verify bytes but never hand a dataset out."""

    def __init__(self, workspace: Path, max_files: int, registry: Any = None) -> None:
        self.workspace = Path(workspace).resolve()
        self.max_files = int(max_files)
        self.registry = registry

    @contextmanager
    def open_dir(self, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
        """A descriptor of workspace/<parts...>, opened without following any link (`create`:
        make missing directories). Raises FileNotFoundError, NotADirectoryError, SymlinkOnPath."""
        fd = os.open(self.workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                if create and not exists_at(fd, part):
                    os.mkdir(part, 0o755, dir_fd=fd)
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    # O_NOFOLLOW | O_DIRECTORY on a link fails with ELOOP or ENOTDIR, by platform.
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                        raise SymlinkOnPath(part) from None
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _location(self, content_hash: str) -> str:
        real = Path(os.path.realpath(self.workspace / SHADOW_DIR / content_hash))
        try:
            return real.relative_to(self.workspace).as_posix()
        except ValueError:
            return "a place outside the workspace"

    def inspect(self, content_hash: str, max_files: int | None = None, *, keep_bytes: bool = True) -> Inspection:
        """Read and hash every entry of the dataset directory once (keeping the bytes to parse
        them when `keep_bytes`), with what the registry says of the hash. Raises InvalidInput for
        a malformed hash and NotFound when no such dataset exists; every other fault is a Problem
        of the inspection."""
        inspection = self._inspect_bytes(content_hash, max_files, keep_bytes)
        return replace(inspection, registration=self.registration(content_hash))

    def registration(self, content_hash: str) -> dict[str, Any]:
        """Facts for data.registered: registered, audited, detail, imported_by."""
        return self.registry.registration(content_hash).facts() if self.registry is not None else dict(NO_REGISTRY)

    def _inspect_bytes(self, content_hash: str, max_files: int | None, keep_bytes: bool) -> Inspection:
        check_content_hash(content_hash)
        try:
            with self.open_dir(("data", "shadow", content_hash)) as dir_fd:
                return self._inspect_dir(content_hash, dir_fd, max_files or self.max_files, keep_bytes)
        except SymlinkOnPath:
            return Inspection(content_hash, self._location(content_hash), True, None)
        except FileNotFoundError:
            raise NotFound(
                f"no dataset {content_hash[:12]}… in {SHADOW_DIR}/",
                "list the datasets with the mlgate://datasets resource; an operator adds data with `mlgate data add`",
                rule_id="data.not_found",
            ) from None
        except NotADirectoryError:
            problem = Problem("not_regular", content_hash, f"{SHADOW_DIR}/{content_hash[:12]}… is not a directory")
            return Inspection(content_hash, f"{SHADOW_DIR}/{content_hash}", False, None, (), (problem,))

    def _inspect_dir(self, content_hash: str, dir_fd: int, max_files: int, keep_bytes: bool) -> Inspection:
        location, names = f"{SHADOW_DIR}/{content_hash}", sorted(os.listdir(dir_fd))
        if len(names) > max_files + 1:
            problem = Problem("too_many_files", content_hash, f"{len(names)} entries, more than datasets.max_files ({max_files}) allows")
            return Inspection(content_hash, location, False, None, (), (problem,))
        # A name that is not UTF-8 (os.listdir hands it over with surrogates) cannot be hashed or shown.
        odd = [os.fsencode(n).decode("utf-8", "backslashreplace") for n in names if _undecodable(n)]
        if odd:
            problem = Problem("name", content_hash, f"{len(odd)} file name(s) are not UTF-8 text, e.g. {odd[0]}")
            return Inspection(content_hash, location, False, None, (), (problem,))
        read = [read_entry(dir_fd, name, keep=keep_bytes or name == MANIFEST) for name in names]
        stored = [r for r in read if isinstance(r, StoredFile)]
        files = tuple(r for r in stored if r.path != MANIFEST)
        manifest = next((r for r in stored if r.path == MANIFEST), None)
        problems = [r for r in read if isinstance(r, Problem)] + _manifest_problems(content_hash, manifest, files, set(names))
        return Inspection(content_hash, location, False, content_hash_of(files), files, tuple(problems))

    def verify(self, content_hash: str, max_files: int | None = None, *, keep_bytes: bool = False, registered: bool = True) -> Inspection:
        """The inspection of a dataset that passed data.shadow_only, data.integrity and (unless
        `registered` is False: the bytes alone, as an import checks them) data.registered.
        Raises InvalidInput, NotFound, IntegrityError or PolicyDenied."""
        return raise_unless_verified(self.inspect(content_hash, max_files, keep_bytes=keep_bytes), USE_RULES if registered else BYTE_RULES)

    def open(self, inspection: Inspection) -> LoadedDataset:
        """Parse the verified bytes of a registered dataset. Raises IntegrityError (unverified, or
        bytes pandas cannot read), PolicyDenied (unregistered) and ValueError for an inspection
        that did not keep its bytes."""
        raise_unless_verified(inspection)
        if any(f.data is None for f in inspection.files):
            raise ValueError("open() needs an inspection made with keep_bytes=True")
        try:
            frame = read_frame(inspection.files)
        except ValueError as exc:
            raise IntegrityError(str(exc), "ask the operator to check the dataset with `mlgate data verify`", rule_id="data.readable") from None
        manifest = {
            "content_hash": inspection.requested,
            "schema_hash": schema_hash(frame),
            "files": [f.entry() for f in inspection.files],
            "rows": int(len(frame)),
            "columns": [str(c) for c in frame.columns],
            "dtypes": dtypes_of(frame),
        }
        return LoadedDataset(frame, manifest)

    def load(self, content_hash: str, limits: Mapping[str, Any] | None = None) -> LoadedDataset:
        """Verify and parse (limits: the policy's `datasets` section). Raises GovernanceError."""
        max_files = int((limits or {}).get("max_files") or self.max_files)
        return self.open(self.verify(content_hash, max_files, keep_bytes=True))

    def list_hashes(self) -> list[str]:
        """Content hashes of the directories under data/shadow (sorted; links never listed)."""
        try:
            with self.open_dir(("data", "shadow")) as root_fd:
                with os.scandir(root_fd) as entries:
                    return sorted(e.name for e in entries if CONTENT_HASH.match(e.name) and e.is_dir(follow_symlinks=False))
        except (OSError, SymlinkOnPath):
            return []
