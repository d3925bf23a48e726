"""Dataset files whose column names would slip past the standards' PII names: a CSV header that
repeats a name (pandas renames the second `email` to `email.1`, which no PII name, exclusion or
mask matches). Real store, registry and audit chain on a tmp dir."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from server.audit import AuditChain
from server.cas import CasStore, StoredFile, content_hash_of
from server.cas_import import _publish, add_dataset
from tests.server.cas_helpers import OPERATOR, store  # noqa: F401 - fixture
from tools.errors import IntegrityError, InvalidInput
from tools.load_dataset import masked_sample

REPEATED_PII = b"id,email,income,email,default\n1,ann@example.com,50,ann.private@example.org,0\n2,bob@example.com,60,bob.private@example.org,1\n"


def _stored_as_before(store: CasStore, name: str, data: bytes) -> str:
    """Bytes stored and registered as an import made before repeated names were refused."""
    stored = StoredFile(name, len(data), hashlib.sha256(data).hexdigest(), data)
    with store.open_dir(("data", "shadow"), create=True) as root_fd:
        _publish(root_fd, content_hash_of([stored]), [stored])
    record = {"content_hash": content_hash_of([stored]), "schema_hash": "0" * 64, "rows": 2, "files": [{"name": name, "size": stored.size, "sha256": stored.sha256}]}
    audit = AuditChain(store.registry.audit_path)
    try:
        store.registry.register(record, OPERATOR, audit)
    finally:
        audit.close()
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


def test_a_csv_header_with_distinct_names_still_imports_and_loads(store: CasStore, tmp_path: Path) -> None:  # noqa: F811
    source = tmp_path / "customers.csv"
    source.write_bytes(REPEATED_PII.replace(b"income,email", b"income,email_backup"))
    added = add_dataset(store, [source])
    assert added.rows == 2 and store.verify(added.content_hash, registered=False).files[0].path == "customers.csv"
