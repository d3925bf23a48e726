"""Dataset files the store must refuse rather than hand out: a CSV header that repeats a name
(pandas renames the second `email` to `email.1`, which no PII name, exclusion or mask matches), and
Parquet columns whose values are no table cells (lists, structs, maps, raw bytes), which
load_dataset could not describe. Real store, registry and audit chain on a tmp dir or workspace."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mcp import Client

from server.app import build_server
from server.audit import AuditChain
from server.cas import CasStore, StoredFile, content_hash_of
from server.cas_import import _publish, add_dataset
from server.ports import build_ports
from server.settings import load_settings
from tests.server.cas_helpers import OPERATOR, store  # noqa: F401 - fixture

pytestmark = pytest.mark.anyio
from tools.errors import IntegrityError, InvalidInput
from tools.load_dataset import masked_sample

REPEATED_PII = b"id,email,income,email,default\n1,ann@example.com,50,ann.private@example.org,0\n2,bob@example.com,60,bob.private@example.org,1\n"


def _stored_as_before(store: CasStore, name: str, data: bytes, audit: Any = None) -> str:
    """Bytes stored and registered as an import made before such files were refused."""
    stored = StoredFile(name, len(data), hashlib.sha256(data).hexdigest(), data)
    with store.open_dir(("data", "shadow"), create=True) as root_fd:
        _publish(root_fd, content_hash_of([stored]), [stored])
    record = {"content_hash": content_hash_of([stored]), "schema_hash": "0" * 64, "rows": 2, "files": [{"name": name, "size": stored.size, "sha256": stored.sha256}]}
    chain = audit or AuditChain(store.registry.audit_path)
    try:
        store.registry.register(record, OPERATOR, chain)
    finally:
        if audit is None:
            chain.close()
    return record["content_hash"]


def test_a_csv_header_that_repeats_a_column_name_is_refused_on_import(store: CasStore, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "customers.csv"
    source.write_bytes(REPEATED_PII)
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [source])
    assert refused.value.rule_id == "data.add" and "['email'] more than once" in refused.value.reason
    assert not (store.workspace / "data" / "shadow").exists() or not any((store.workspace / "data" / "shadow").iterdir())


def test_a_stored_csv_whose_header_repeats_a_pii_column_is_refused_and_never_sampled(store: CasStore) -> None:  # noqa: F811
    content_hash = _stored_as_before(store, "customers.csv", REPEATED_PII)
    try:
        loaded = store.load(content_hash)
    except IntegrityError as exc:
        assert exc.rule_id == "data.readable" and "['email'] more than once" in exc.reason
        return
    shown = masked_sample(loaded.frame, ["email"], 5)
    pytest.fail(f"the repeated PII column was handed out: columns {list(loaded.frame.columns)}, sample {shown}")


@pytest.mark.parametrize("header", [b"income,email_backup", b",", b" , "], ids=["distinct", "blank", "spaces"])
def test_a_csv_header_with_distinct_or_blank_names_still_imports_and_loads(store: CasStore, tmp_path: Path, header: bytes) -> None:  # noqa: F811
    source = tmp_path / "customers.csv"
    source.write_bytes(REPEATED_PII.replace(b"income,email", header))
    added = add_dataset(store, [source])
    assert added.rows == 2 and store.verify(added.content_hash, registered=False).files[0].path == "customers.csv"


# --- Parquet columns that are no table cells: nested (list, struct, map) or raw bytes ----------------

NOT_CELLS = {
    "list": lambda: pa.array([[1, 2], None]),
    "struct": lambda: pa.array([{"a": 1}, {"a": 2}]),
    "map": lambda: pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())),
    "binary": lambda: pa.array([b"\x00\xff", b"ab"]),
}


def _parquet(path: Path, kind: str) -> Path:
    pq.write_table(pa.table({"income": pa.array([50, 60]), kind: NOT_CELLS[kind](), "default": pa.array([0, 1])}), path)
    return path


@pytest.mark.parametrize("kind", sorted(NOT_CELLS))
def test_a_parquet_column_of_nested_values_or_bytes_is_refused_on_import(store: CasStore, tmp_path: Path, kind: str) -> None:  # noqa: F811
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [_parquet(tmp_path / "part.parquet", kind)])
    assert refused.value.rule_id == "data.add" and f"column {kind!r}" in refused.value.reason


async def test_load_dataset_refuses_a_stored_parquet_with_a_bytes_column_with_a_reason_not_a_server_failure(workspace: Path, tmp_path: Path) -> None:
    settings = load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    try:
        data = _parquet(tmp_path / "part.parquet", "binary").read_bytes()
        content_hash = _stored_as_before(ports.cas, "part.parquet", data, ports.audit)
        async with Client(build_server(settings, ports)) as client:
            result = await client.call_tool("load_dataset", {"content_hash": content_hash})
    finally:
        ports.audit.close()
    assert result.is_error and result.structured_content["rule_id"] == "data.readable", result.structured_content
    assert "column 'binary'" in result.structured_content["reason"]


# --- a CSV whose rows all have one more field than its header ----------------------------------------

TRAILING_COMMAS = b"income,default\n50,0,\n60,1,\n"  # pandas would make income the index: income := default


@pytest.mark.parametrize("text", [TRAILING_COMMAS, b"\xef\xbb\xbfid,x,default\r\n\r\n0,5,1,\r\n1,6,0,\r\n"], ids=["values", "bom-crlf-ids-from-0"])
def test_a_csv_whose_rows_have_one_more_field_than_its_header_is_refused_not_shifted(store: CasStore, tmp_path: Path, text: bytes) -> None:  # noqa: F811
    source = tmp_path / "export.csv"
    source.write_bytes(text)
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [source])
    assert refused.value.rule_id == "data.add" and "one more field than its header" in refused.value.reason


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_a_csv_separated_by_semicolons_tabs_or_pipes_is_refused_not_read_as_one_column(store: CasStore, tmp_path: Path, separator: str) -> None:  # noqa: F811
    source = tmp_path / "export.csv"
    source.write_text(separator.join(["income", "default"]) + "\n" + separator.join(["50,5", "0"]) + "\n")
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [source])
    assert refused.value.rule_id == "data.add" and f"separated by {separator!r}" in refused.value.reason
    assert "comma-separated CSV with a decimal point" in refused.value.reason


def test_a_one_column_csv_whose_name_has_no_separator_still_imports(store: CasStore, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "export.csv"
    source.write_text("income\n50\n60\n")
    assert add_dataset(store, [source]).rows == 2


def test_a_stored_csv_with_trailing_commas_is_refused_on_load(store: CasStore) -> None:  # noqa: F811
    content_hash = _stored_as_before(store, "export.csv", TRAILING_COMMAS)
    try:
        loaded = store.load(content_hash)
    except IntegrityError as exc:
        assert exc.rule_id == "data.readable" and "one more field than its header" in exc.reason
        return
    pytest.fail(f"the columns were shifted: {loaded.frame.to_dict('records')}")
