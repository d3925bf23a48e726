"""Stored dataset files and the dataset registry are the agent's to replace in stdio mode (DESIGN §9:
same OS user). A sparse file far larger than memory planted in place of a stored dataset file, of
its manifest or of `<state_dir>/datasets.json` costs the agent nothing to make; the server must
refuse it by its size, before reading it, instead of reading it whole; and the audit chain lines
the registry reads are bounded (a piece cut from an overlong line is no record). Real store,
registry, audit chain, workspace and in-memory MCP client; the planted files are real sparse files."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitTimeout
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.cas import MANIFEST, CasStore
from server.cas_import import add_dataset
from server.commands.data import import_files
from server.dataset_registry import MAX_RECORD_BYTES, report_unvouched_datasets
from server.demo_data import credit_frame
from server.ports import Ports
from server.settings import Settings, policy_limits
from tests.server.cas_helpers import added, dataset_dir, imported, sources, store, writable  # noqa: F401 - fixtures
from tools.errors import IntegrityError, InvalidInput, PolicyDenied

pytestmark = pytest.mark.anyio

TERABYTE = 1 << 40
BOUND_S = 10.0  # a refusal by size takes milliseconds; reading 1 TB would take hours (or exhaust memory)
READ_BOUND = 64 << 20  # bytes this process may read meanwhile (imports, the small files): far below the plant


def planted(path: Path, size: int = TERABYTE) -> None:
    """A sparse file of `size` bytes (no disk blocks) at `path`, in place of what was there."""
    with writable(path.parent):
        path.unlink(missing_ok=True)
        with path.open("wb") as handle:
            handle.truncate(size)
        path.chmod(0o444)


def bytes_read() -> int:
    """Bytes this process has read by read(2) and friends (all threads): /proc/self/io rchar."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def unread_within_bound(call: Callable[[], Any]) -> Any:
    """Run `call` in a thread: it must return (or raise) within BOUND_S, reading less than
    READ_BOUND bytes and growing the peak memory by less than that."""
    pool = ThreadPoolExecutor(max_workers=1)
    before, peak = bytes_read(), peak_rss_bytes()
    try:
        return pool.submit(call).result(timeout=BOUND_S)
    except WaitTimeout:
        pytest.fail(f"still reading the planted file after {BOUND_S} s")
    finally:
        pool.shutdown(wait=False)
        assert bytes_read() - before < READ_BOUND, "the planted file was read"
        assert peak_rss_bytes() - peak < READ_BOUND, "memory grew by the planted file"


# --- stored dataset files: refused by size, unread -------------------------------------------------


@pytest.fixture
def dataset(workspace: Path, tmp_path: Path) -> str:
    source = tmp_path / "credit.csv"
    credit_frame(rows=80, seed=11).to_csv(source, index=False)
    return import_files(workspace, [source]).added.content_hash


async def load_dataset(settings: Settings, ports: Ports, content_hash: str) -> Any:
    async with Client(build_server(settings, ports)) as client:
        return await client.call_tool("load_dataset", {"content_hash": content_hash})


async def test_load_dataset_refuses_a_sparse_terabyte_file_planted_as_a_stored_file_without_reading_it(settings: Settings, ports: Ports, dataset: str) -> None:
    planted(settings.workspace / "data" / "shadow" / dataset / "credit.csv")
    before, peak, started = bytes_read(), peak_rss_bytes(), time.monotonic()
    result = await load_dataset(settings, ports, dataset)
    elapsed = time.monotonic() - started
    assert result.is_error and result.structured_content["rule_id"] == "data.integrity", result.structured_content
    assert f"credit.csv holds {TERABYTE} bytes" in result.structured_content["reason"]
    assert "mlgate data add" in result.structured_content["remediation"]
    assert elapsed < BOUND_S and bytes_read() - before < READ_BOUND and peak_rss_bytes() - peak < READ_BOUND


async def test_load_dataset_still_loads_an_ordinary_dataset(settings: Settings, ports: Ports, dataset: str) -> None:
    result = await load_dataset(settings, ports, dataset)
    assert not result.is_error, result.structured_content
    assert result.structured_content["rows"] == 80 and [f["path"] for f in result.structured_content["files"]] == ["credit.csv"]


def test_a_stored_file_shorter_than_its_manifest_size_is_refused_by_its_size(store: CasStore, added: str) -> None:  # noqa: F811
    path = dataset_dir(store, added) / "part-a.csv"
    size = path.stat().st_size
    short = path.read_bytes()[: size // 2]
    with writable(path.parent):
        path.unlink()
        path.write_bytes(short)
    with pytest.raises(IntegrityError) as refused:
        store.load(added)
    assert refused.value.rule_id == "data.integrity"
    assert f"part-a.csv holds {size // 2} bytes, its manifest records {size}" in refused.value.reason


def test_a_stored_file_of_the_manifest_size_with_other_bytes_is_still_a_hash_mismatch(store: CasStore, added: str) -> None:  # noqa: F811
    path = dataset_dir(store, added) / "part-b.csv"
    data = path.read_bytes()
    with writable(path.parent):
        path.unlink()
        path.write_bytes(data.replace(b"Customer", b"Kustomer", 1))
    with pytest.raises(IntegrityError) as refused:
        store.load(added)
    assert refused.value.rule_id == "data.integrity" and "part-b.csv was changed after import (SHA-256 differs)" in refused.value.reason


def test_verify_refuses_a_sparse_terabyte_file_as_the_operator_checks_it(store: CasStore, added: str) -> None:  # noqa: F811
    planted(dataset_dir(store, added) / "part-b.csv")
    with pytest.raises(IntegrityError) as refused:
        unread_within_bound(lambda: store.verify(added))
    assert refused.value.rule_id == "data.integrity" and f"part-b.csv holds {TERABYTE} bytes" in refused.value.reason


def test_a_sparse_terabyte_file_planted_beside_the_imported_files_is_named_and_never_read(store: CasStore, added: str) -> None:  # noqa: F811
    planted(dataset_dir(store, added) / "extra.csv")
    with pytest.raises(IntegrityError) as refused:
        unread_within_bound(lambda: store.load(added))
    assert refused.value.rule_id == "data.integrity" and "extra.csv was not imported (extra file)" in refused.value.reason


def test_a_sparse_terabyte_manifest_is_refused_without_reading_it(store: CasStore, added: str) -> None:  # noqa: F811
    planted(dataset_dir(store, added) / MANIFEST)
    with pytest.raises(IntegrityError) as refused:
        unread_within_bound(lambda: store.load(added))
    assert refused.value.rule_id == "data.integrity" and f"{MANIFEST} holds {TERABYTE} bytes, over the" in refused.value.reason


def test_a_stored_file_over_the_file_cap_is_refused_unread_even_when_its_manifest_records_that_size(tmp_path: Path, store: CasStore, sources: Path) -> None:  # noqa: F811
    content_hash = imported(store, [sources / "part-a.csv"])
    size = (sources / "part-a.csv").stat().st_size
    capped = CasStore(store.workspace, store.max_files, store.registry, max_file_bytes=size - 1)
    with pytest.raises(IntegrityError) as refused:
        unread_within_bound(lambda: capped.load(content_hash))
    assert refused.value.rule_id == "data.integrity" and f"part-a.csv holds {size} bytes, over the datasets.max_file_bytes cap ({size - 1})" in refused.value.reason


def test_an_import_of_a_file_over_the_file_cap_is_refused_and_stores_nothing(tmp_path: Path, store: CasStore, sources: Path) -> None:  # noqa: F811
    big = tmp_path / "big.csv"
    with big.open("wb") as handle:
        handle.truncate(int(policy_limits()["datasets"]["max_file_bytes"]) + 1)
    with pytest.raises(InvalidInput) as refused:
        unread_within_bound(lambda: add_dataset(store, [big]))
    assert refused.value.rule_id == "data.add" and "over the datasets.max_file_bytes cap" in refused.value.reason
    assert not (store.workspace / "data" / "shadow").exists() or not any((store.workspace / "data" / "shadow").iterdir())


# --- the dataset registry ----------------------------------------------------------------------------


def planted_registry(store: CasStore) -> None:
    with store.registry.path.open("r+b") as handle:
        handle.truncate(TERABYTE)  # the real entries stay at its start: still refused, by size


def test_an_oversized_sparse_registry_registers_nothing_and_says_why(store: CasStore, added: str) -> None:  # noqa: F811
    planted_registry(store)
    cap = int(policy_limits()["datasets"]["max_registry_bytes"])
    registration = unread_within_bound(lambda: store.registry.registration(added))
    assert registration.entry is None and f"datasets.json holds {TERABYTE} bytes, over the datasets.max_registry_bytes cap ({cap})" in registration.detail
    with pytest.raises(PolicyDenied) as refused:
        unread_within_bound(lambda: store.load(added))
    assert refused.value.rule_id == "data.registered" and "datasets.json holds" in refused.value.reason and refused.value.remediation
    assert unread_within_bound(lambda: report_unvouched_datasets(store.registry.path.parent, store.registry.audit_path)) is False


def test_the_operator_imports_again_over_an_oversized_registry_and_the_dataset_loads(store: CasStore, added: str, sources: Path) -> None:  # noqa: F811
    planted_registry(store)
    assert unread_within_bound(lambda: imported(store, [sources / "part-a.csv", sources / "part-b.csv"])) == added
    assert store.registry.path.stat().st_size < 1 << 20 and store.load(added).manifest["rows"] == 60


def test_a_registry_entry_citing_a_record_after_an_overlong_chain_line_is_still_found(store: CasStore, added: str) -> None:  # noqa: F811
    chain = store.registry.audit_path
    chain.write_bytes(b"x" * (3 << 20) + b"\n" + chain.read_bytes())  # the cited offset is stale now: a scan finds it
    assert unread_within_bound(lambda: store.registry.registration(added)).audited is True


def test_an_import_record_cut_from_the_tail_of_an_overlong_chain_line_vouches_for_nothing(store: CasStore, added: str) -> None:  # noqa: F811
    chain = store.registry.audit_path
    lines = chain.read_bytes().splitlines(keepends=True)
    smuggled = [b"x" * MAX_RECORD_BYTES + line if b'"dataset_import"' in line else line for line in lines]
    chain.write_bytes(b"".join(smuggled))  # the record is now the last MAX_RECORD_BYTES-sized piece of a longer line
    registration = unread_within_bound(lambda: store.registry.registration(added))
    assert registration.audited is False and "holds no record" in registration.detail
