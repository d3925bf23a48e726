"""The registered datasets in a backup: `datasets/<content hash>/` beside `state/`, listed in
`DATASETS.tsv` (`<hash>/<relative path>\\t<size>\\t<sha256>` per file, sorted).

The state directory alone restores a workspace whose runs, promotions and reproductions all name
datasets that are gone: `data/shadow/` is git-ignored, so a clone of the workspace on a new host
has none of them. A dataset is immutable and content-addressed, so restore copies in only those
the workspace lacks and leaves any it has (their bytes are verified whenever they are used).
A backup without DATASETS.tsv (`--without-datasets`, or an older backup) restores the state alone.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from server.backup import file_sha256
from tools.errors import IntegrityError

LISTING = "DATASETS.tsv"
DATASETS = "datasets"
SHADOW = Path("data") / "shadow"
HASH = re.compile(r"^[0-9a-f]{64}\Z")


def dataset_files(directory: Path) -> list[Path]:
    """Relative paths of a dataset directory's regular files, sorted (links never followed)."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs.sort()
        found += [Path(root, f).relative_to(directory) for f in files if Path(root, f).is_file() and not Path(root, f).is_symlink()]
    return sorted(found, key=lambda p: p.as_posix())


def copy_datasets(workspace: Path, hashes: Iterable[str], staging: Path) -> tuple[list[str], list[str], int]:
    """Copy each registered dataset present under the workspace's data/shadow into
    `staging/datasets/` and write the listing. Returns (copied hashes, missing hashes, bytes)."""
    copied, missing, lines = [], [], []
    for content_hash in sorted(h for h in hashes if HASH.match(h)):
        source = workspace / SHADOW / content_hash
        if source.is_symlink() or not source.is_dir():
            missing.append(content_hash)
            continue
        for relative in dataset_files(source):
            target = staging / DATASETS / content_hash / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / relative, target, follow_symlinks=False)
            lines.append(f"{content_hash}/{relative.as_posix()}\t{target.stat().st_size}\t{file_sha256(target)}\n")
        copied.append(content_hash)
    if copied:
        (staging / LISTING).write_text("".join(sorted(lines)))
    return copied, missing, sum(int(line.split("\t")[1]) for line in lines)


def _entries(backup: Path) -> list[tuple[str, int, str]]:
    entries = []
    for line in (backup / LISTING).read_text().splitlines():
        relative, size, digest = line.split("\t")
        parts = Path(relative).parts
        if relative.startswith("/") or ".." in parts or len(parts) < 2 or not HASH.match(parts[0]):
            raise IntegrityError(f"{LISTING} names {relative!r}, outside the backup's datasets", "the backup was altered: restore from another one", rule_id="backup.manifest")
        entries.append((relative, int(size), digest))
    return entries


def check_datasets(backup: Path) -> list[str]:
    """Re-hash every dataset file against DATASETS.tsv. Returns the content hashes held (none for a
    backup without datasets). Raises IntegrityError on a missing, changed or extra file."""
    if not (backup / LISTING).is_file():
        return []
    entries = _entries(backup)
    for relative, size, digest in entries:
        path = backup / DATASETS / relative
        if not path.is_file() or path.is_symlink() or path.stat().st_size != size or file_sha256(path) != digest:
            raise IntegrityError(f"dataset file {relative} in the backup does not match {LISTING}", "the backup was altered or is incomplete: restore from another one", rule_id="backup.integrity")
    held = sorted({Path(relative).parts[0] for relative, _, _ in entries})
    extra = [f"{h}/{p.as_posix()}" for h in held for p in dataset_files(backup / DATASETS / h) if f"{h}/{p.as_posix()}" not in {e[0] for e in entries}]
    if extra:
        raise IntegrityError(f"the backup holds dataset files {LISTING} does not list: {extra[:5]}", "the backup was altered: restore from another one", rule_id="backup.integrity")
    return held


def restore_datasets(backup: Path, workspace: Path, held: list[str]) -> list[str]:
    """Copy into the workspace's data/shadow each dataset of `held` (checked by check_datasets) it
    lacks, each staged beside its final place and renamed in. Returns the hashes copied."""
    shadow = workspace / SHADOW
    shadow.mkdir(parents=True, exist_ok=True)
    restored = []
    for content_hash in held:
        target = shadow / content_hash
        if target.exists() or target.is_symlink():
            continue
        staging = shadow / f".{content_hash}.restoring"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(backup / DATASETS / content_hash, staging, symlinks=False)
        os.replace(staging, target)
        restored.append(content_hash)
    return restored
