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
hashed and those same bytes are parsed (no check-then-swap; server/cas_entries.py). Integrity is
decided by the pure rules `data.shadow_only` and `data.integrity` (policies/data.py).

Sizes are checked before bytes are read, since a sparse terabyte costs whoever plants it nothing:
the manifest is read first, and only when fstat shows it within what `datasets.max_files` lines
can hold (MANIFEST_LINE_MAX each); a data file is read only when the manifest hashes to the content
hash and records it, and only when fstat shows exactly the recorded size, within
`datasets.max_file_bytes` (configs/policy.yaml, also the import's cap). Reads stop one byte past
that size, so a file that grows after fstat is caught without reading it either. A file the
manifest does not vouch for is only checked (link, type), never read.

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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policies import evaluate
from policies.data import SHADOW_DIR, integrity, registered, shadow_only
from server.cas_entries import Problem, StoredFile, check_entry, exists_at, is_link, read_entry
from server.cas_frames import dtypes_of, read_frame, schema_hash
from server.settings import policy_limits
from tools.errors import IntegrityError, InvalidInput, NotFound, PolicyDenied

if TYPE_CHECKING:  # pandas is imported where a file is parsed (server/cas_frames.py)
    import pandas as pd

CONTENT_HASH = re.compile(r"^[0-9a-f]{64}\Z")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(csv|parquet)\Z")
MANIFEST = "manifest.tsv"
# The longest manifest line: the longest FILE_NAME (128 characters and `.parquet`), a 20-digit
# size (any 64-bit count), a hex SHA-256, two tabs and the newline.
MANIFEST_LINE_MAX = 128 + len(".parquet") + 20 + 64 + 3
BYTE_RULES = (shadow_only, integrity)
USE_RULES = (shadow_only, integrity, registered)
NO_REGISTRY = {"registered": False, "audited": False, "detail": "this workspace's store has no dataset registry"}
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def manifest_cap(max_files: int) -> int:
    """The most bytes a manifest of `max_files` files can hold: no import writes a larger one."""
    return max_files * MANIFEST_LINE_MAX


def _recorded(requested: str, manifest: StoredFile | Problem | None) -> tuple[dict[str, tuple[int, str]] | None, list[Problem]]:
    """The manifest's {path: (size, sha256)} when it hashes to the requested hash (so its sizes
    are the imported ones), else None with why not."""
    if not isinstance(manifest, StoredFile):
        return None, [manifest or Problem("manifest", MANIFEST, f"{MANIFEST} is missing")]
    if manifest.sha256 != requested:
        return None, [Problem("manifest", MANIFEST, f"{MANIFEST} was changed (it no longer hashes to the content hash)")]
    try:
        return parse_manifest(manifest.data or b""), []
    except (ValueError, UnicodeDecodeError):
        return None, [Problem("manifest", MANIFEST, f"{MANIFEST} is malformed")]


def _manifest_problems(recorded: Mapping[str, tuple[int, str]], files: Sequence[StoredFile], names: Sequence[str]) -> list[Problem]:
    """Missing, extra and modified files against the manifest's records."""
    problems = [Problem("missing", p, f"{p} is missing") for p in sorted(recorded) if p not in names]
    problems += [Problem("extra", n, f"{n} was not imported (extra file)") for n in names if n != MANIFEST and n not in recorded]
    changed = [f.path for f in files if recorded[f.path] != (f.size, f.sha256)]
    return problems + [Problem("modified", p, f"{p} was changed after import (SHA-256 differs)") for p in changed]


class SymlinkOnPath(Exception):
    """A component of a path opened by CasStore.open_dir is a symbolic link."""


# --- the store --------------------------------------------------------------------------------


class CasStore:
    """The workspace's dataset store. `max_files` caps the entries one dataset may have and
    `max_file_bytes` the size of one file (default: configs/policy.yaml datasets.max_file_bytes);
    `registry` (server/dataset_registry.py) says which hashes an operator imported. A store
    without one registers nothing, so it can verify bytes but never hand a dataset out."""

    def __init__(self, workspace: Path, max_files: int, registry: Any = None, max_file_bytes: int | None = None) -> None:
        self.workspace = Path(workspace).resolve()
        self.max_files = int(max_files)
        self.max_file_bytes = int(max_file_bytes if max_file_bytes is not None else policy_limits()["datasets"]["max_file_bytes"])
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
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and is_link(fd, part):
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
        """Check every entry of the dataset directory, and read and hash once each file its
        manifest records, at the recorded size (keeping the bytes to parse them when
        `keep_bytes`), with what the registry says of the hash. Raises InvalidInput for
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
        cap = (manifest_cap(max_files), f"datasets.max_files ({max_files}) manifest")
        manifest = read_entry(dir_fd, MANIFEST, max_bytes=cap[0], cap_name=cap[1]) if MANIFEST in names else None
        recorded, problems = _recorded(content_hash, manifest)
        read = [self._entry(dir_fd, name, recorded, keep_bytes) for name in names if name != MANIFEST]
        files = tuple(r for r in read if isinstance(r, StoredFile))
        problems += _manifest_problems(recorded, files, names) if recorded is not None else []
        problems = [r for r in read if isinstance(r, Problem)] + problems
        return Inspection(content_hash, location, False, content_hash_of(files), files, tuple(problems))

    def _entry(self, dir_fd: int, name: str, recorded: Mapping[str, tuple[int, str]] | None, keep: bool) -> StoredFile | Problem | None:
        """A data file read at the size its manifest records; one the manifest does not vouch for
        (or every one, when the manifest is unusable) is only checked, never read: the dataset is
        refused anyway, and reading up to the cap per planted file would only cost time."""
        if recorded is None or name not in recorded:
            return check_entry(dir_fd, name)
        return read_entry(dir_fd, name, max_bytes=self.max_file_bytes, expected=recorded[name][0], keep=keep)

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
