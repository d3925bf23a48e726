"""The content-addressed dataset store on real files: hash definitions, verification, tampering."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from server.cas import MANIFEST, CasStore, StoredFile, content_hash_of, read_frame, schema_hash
from server.cas_import import add_dataset
from tests.server.cas_helpers import added, dataset_dir, snapshot, sources, store, writable
from tools.errors import IntegrityError, InvalidInput, NotFound

__all__ = ["added", "sources", "store"]  # fixtures


# --- definitions ------------------------------------------------------------------------------


def test_content_hash_is_the_sha256_of_the_sorted_manifest_lines(store: CasStore, sources: Path, added: str) -> None:
    lines = []
    for name in ("part-a.csv", "part-b.csv"):
        data = (sources / name).read_bytes()
        lines.append(f"{name}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}\n")
    manifest = "".join(lines).encode("utf-8")
    assert added == hashlib.sha256(manifest).hexdigest()
    assert (dataset_dir(store, added) / MANIFEST).read_bytes() == manifest


def test_schema_hash_is_the_sha256_of_sorted_column_dtype_pairs(store: CasStore, added: str) -> None:
    loaded = store.load(added)
    pairs = sorted([str(c), str(t)] for c, t in loaded.frame.dtypes.items())
    expected = hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()
    assert loaded.manifest["schema_hash"] == expected == schema_hash(loaded.frame)


def test_the_same_files_added_from_other_folders_in_another_order_give_the_same_hashes(tmp_path: Path, sources: Path) -> None:
    copies = tmp_path / "elsewhere"
    copies.mkdir()
    for name in ("part-a.csv", "part-b.csv"):
        (copies / name).write_bytes((sources / name).read_bytes())
    first_ws, second_ws = tmp_path / "one", tmp_path / "two"
    first_ws.mkdir(), second_ws.mkdir()
    first = add_dataset(CasStore(first_ws, 8), [sources / "part-a.csv", sources / "part-b.csv"])
    second = add_dataset(CasStore(second_ws, 8), [copies / "part-b.csv", copies / "part-a.csv"])
    assert (first.content_hash, first.schema_hash) == (second.content_hash, second.schema_hash)


def test_a_changed_byte_gives_another_content_hash_but_the_same_schema_hash(tmp_path: Path, sources: Path, store: CasStore, added: str) -> None:
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "part-a.csv").write_bytes((sources / "part-a.csv").read_bytes().replace(b"Customer 1,", b"Customer 9,", 1))
    (changed / "part-b.csv").write_bytes((sources / "part-b.csv").read_bytes())
    other = add_dataset(store, [changed / "part-a.csv", changed / "part-b.csv"])
    assert other.content_hash != added and other.schema_hash == store.load(added).manifest["schema_hash"]


# --- verification -----------------------------------------------------------------------------


def test_verify_reads_every_file_once_and_returns_the_hashed_bytes(store: CasStore, sources: Path, added: str) -> None:
    inspection = store.verify(added, keep_bytes=True)
    assert inspection.recomputed == added and inspection.location == f"data/shadow/{added}"
    assert [f.data for f in inspection.files] == [(sources / n).read_bytes() for n in ("part-a.csv", "part-b.csv")]
    assert content_hash_of(inspection.files) == added and len(read_frame(inspection.files)) == 60


def test_verification_alone_drops_the_bytes_and_they_cannot_be_parsed_later(store: CasStore, added: str) -> None:
    inspection = store.verify(added)
    assert inspection.recomputed == added and {f.data for f in inspection.files} == {None}
    with pytest.raises(ValueError, match="keep_bytes=True"):
        store.open(inspection)


@pytest.mark.parametrize("bad", ["A" * 64, "g" * 64, "a" * 63, "a" * 65, "../x", "/etc/passwd", "a" * 63 + "\n", ".." + "a" * 62, ""])
def test_malformed_hashes_are_refused_before_any_file_is_touched(store: CasStore, added: str, bad: str) -> None:
    before = snapshot(store.workspace)
    with pytest.raises(InvalidInput) as refused:
        store.verify(bad)
    assert refused.value.rule_id == "data.hash_format" and "64 lowercase hexadecimal" in refused.value.reason
    assert snapshot(store.workspace) == before


def test_an_unknown_hash_is_not_found(store: CasStore, added: str) -> None:
    with pytest.raises(NotFound) as missing:
        store.verify("0" * 64)
    assert missing.value.rule_id == "data.not_found" and "mlgate://datasets" in missing.value.remediation


def _swap(folder: Path) -> None:
    target = folder / "part-a.csv"
    body = target.read_bytes().replace(b"Customer 0,", b"Customer X,")
    target.unlink()
    target.write_bytes(body)


def _edit_in_place(folder: Path) -> None:
    target = folder / "part-b.csv"
    target.chmod(0o644)
    with target.open("r+b") as stream:
        stream.write(b"X")


def _symlink(folder: Path) -> None:
    (folder / "part-b.csv").unlink()
    (folder / "part-b.csv").symlink_to(folder.parent.parent.parent / "elsewhere.csv")


def _hardlink(folder: Path) -> None:
    os.link(folder / "part-a.csv", folder.parent.parent.parent / "second-name.csv")


def _subdirectory(folder: Path) -> None:
    (folder / "nested").mkdir()


def _edit_manifest(folder: Path) -> None:
    (folder / MANIFEST).write_text((folder / MANIFEST).read_text().replace("part-b.csv", "part-c.csv"))


TAMPERING = {
    "swapped file": (_swap, "modified", "part-a.csv was changed after import"),
    "edited in place": (_edit_in_place, "modified", "part-b.csv was changed after import"),
    "extra file": (lambda f: (f / "extra.csv").write_text("a\n1\n"), "extra", "extra.csv was not imported"),
    "missing file": (lambda f: (f / "part-b.csv").unlink(), "missing", "part-b.csv is missing"),
    "symlink in dir": (_symlink, "symlink", "part-b.csv is a symbolic link"),
    "hardlink in dir": (_hardlink, "hardlink", "part-a.csv has 2 hard links"),
    "subdirectory": (_subdirectory, "not_regular", "nested is not a regular file"),
    "manifest edited": (_edit_manifest, "manifest", "manifest.tsv was changed"),
    "manifest removed": (lambda f: (f / MANIFEST).unlink(), "manifest", "manifest.tsv is missing"),
}


@pytest.mark.parametrize("kind", TAMPERING)
def test_tampering_inside_a_dataset_directory_is_an_integrity_error_and_changes_nothing(store: CasStore, added: str, kind: str) -> None:
    tamper, problem_kind, detail = TAMPERING[kind]
    (store.workspace / "elsewhere.csv").write_text("a\n1\n")
    with writable(dataset_dir(store, added)) as folder:
        tamper(folder)
    before = snapshot(store.workspace)
    inspection = store.inspect(added)
    assert problem_kind in {p.kind for p in inspection.problems}
    with pytest.raises(IntegrityError) as refused:
        store.verify(added)
    assert refused.value.rule_id == "data.integrity" and detail in refused.value.reason
    assert "mlgate data add" in refused.value.remediation
    with pytest.raises(IntegrityError):
        store.load(added)
    assert snapshot(store.workspace) == before


def test_a_dataset_directory_that_is_a_symlink_is_refused_as_outside_the_shadow_store(tmp_path: Path, store: CasStore, added: str) -> None:
    outside = tmp_path / "outside" / added
    outside.parent.mkdir()
    dataset_dir(store, added).rename(outside)
    dataset_dir(store, added).symlink_to(outside)
    inspection = store.inspect(added)
    assert inspection.symlinked and inspection.location == "a place outside the workspace" and not inspection.files
    with pytest.raises(IntegrityError) as refused:
        store.verify(added)
    assert refused.value.rule_id == "data.shadow_only"


def test_a_symlink_to_another_dataset_is_refused(store: CasStore, sources: Path, added: str) -> None:
    other = add_dataset(store, [sources / "credit.parquet"]).content_hash
    alias = "f" * 64
    dataset_dir(store, alias).symlink_to(dataset_dir(store, other))
    inspection = store.inspect(alias)
    assert inspection.symlinked and inspection.location == f"data/shadow/{other}"
    assert store.list_hashes() == sorted([added, other])


def test_too_many_entries_are_refused_without_reading_them(store: CasStore, added: str) -> None:
    with writable(dataset_dir(store, added)) as folder:
        for n in range(8):
            (folder / f"junk-{n}.csv").write_text("a\n1\n")
    inspection = store.inspect(added)
    assert [p.kind for p in inspection.problems] == ["too_many_files"] and inspection.recomputed is None


def test_list_hashes_names_only_hash_directories(store: CasStore, added: str) -> None:
    shadow = store.workspace / "data" / "shadow"
    (shadow / ".incoming-0123").mkdir()
    (shadow / "not-a-hash").mkdir()
    (shadow / ("e" * 64)).write_text("a file, not a dataset")
    assert store.list_hashes() == [added]
    assert CasStore(store.workspace.parent, 8).list_hashes() == []


def test_read_frame_refuses_files_whose_schemas_differ() -> None:
    def stored(name: str, body: bytes) -> StoredFile:
        return StoredFile(name, len(body), hashlib.sha256(body).hexdigest(), body)

    with pytest.raises(ValueError, match="other columns or dtypes"):
        read_frame([stored("a.csv", b"x,y\n1,2\n"), stored("b.csv", b"x,y\n1,zz\n")])
    assert list(read_frame([stored("a.csv", b"x,y\n1,2\n")]).columns) == ["x", "y"]
    assert isinstance(read_frame([stored("a.csv", b"x\n1\n"), stored("b.csv", b"x\n2\n")]), pd.DataFrame)
