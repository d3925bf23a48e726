"""Shared pieces of the CAS tests: source files, a store on a tmp dir (with its dataset registry and
audit chain), an imported dataset, and helpers to snapshot a tree and to tamper with a read-only
dataset directory."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from policies import Principal
from server.audit import AuditChain
from server.cas import CasStore
from server.cas_import import import_dataset
from server.dataset_registry import DatasetRegistry
from server.demo_data import credit_frame

OPERATOR = Principal("data-operator", "operator")


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """Two CSV parts of one small credit dataset and a Parquet copy of the first."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    frame = credit_frame(rows=60, seed=3)
    frame.iloc[:40].to_csv(folder / "part-a.csv", index=False)
    frame.iloc[40:].to_csv(folder / "part-b.csv", index=False)
    frame.iloc[:40].to_parquet(folder / "credit.parquet", index=False)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> CasStore:
    (tmp_path / "ws").mkdir()
    state = tmp_path / "ws" / ".mlgate"
    return CasStore(tmp_path / "ws", max_files=8, registry=DatasetRegistry(state, state / "audit.jsonl"))


def imported(store: CasStore, paths: list[Path]) -> str:
    """Import as `mlgate data add` does: store the files, chain the import, register it."""
    audit = AuditChain(store.registry.audit_path)
    try:
        return import_dataset(store, store.registry, audit, paths, OPERATOR).added.content_hash
    finally:
        audit.close()


@pytest.fixture
def added(store: CasStore, sources: Path) -> str:
    return imported(store, [sources / "part-a.csv", sources / "part-b.csv"])


def dataset_dir(store: CasStore, content_hash: str) -> Path:
    return store.workspace / "data" / "shadow" / content_hash


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root: mode, link target or bytes (what 'nothing changed' compares)."""
    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            body = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
            seen[str(path.relative_to(root))] = (stat.filemode(info.st_mode), info.st_nlink, body)
    return seen


@contextmanager
def writable(folder: Path) -> Iterator[Path]:
    """Tamper as a process behind the server's back would: make the 0555 dir writable first."""
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        folder.chmod(0o555)
