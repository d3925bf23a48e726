"""Importing datasets (server/cas_import.py) on real files: layout, idempotence, refusals."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from server.cas import MANIFEST, CasStore
from server.cas_import import add_dataset
from tests.server.cas_helpers import OPERATOR, added, dataset_dir, imported, snapshot, sources, store, writable
from tools.errors import IntegrityError, InvalidInput, PolicyDenied

__all__ = ["added", "sources", "store"]  # fixtures



def test_add_stores_read_only_files_in_a_read_only_directory_named_by_the_hash(store: CasStore, added: str) -> None:
    folder = dataset_dir(store, added)
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "part-a.csv", "part-b.csv"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o444}
    assert [p.name for p in folder.parent.iterdir()] == [added]  # no temp directory left behind


def test_adding_the_same_bytes_again_reuses_the_verified_directory(store: CasStore, sources: Path, added: str) -> None:
    before = snapshot(store.workspace)
    again = add_dataset(store, [sources / "part-b.csv", sources / "part-a.csv"])
    assert again.reused and again.content_hash == added and again.rows == 60
    assert snapshot(store.workspace) == before


def test_parquet_files_are_imported_and_loaded(store: CasStore, sources: Path) -> None:
    loaded = store.load(imported(store, [sources / "credit.parquet"]))
    assert loaded.manifest["rows"] == 40 and loaded.manifest["columns"][0] == "customer_id"
    assert loaded.frame["income"].dtype == "float64"


def test_parquet_decimal_amounts_load_as_numbers_not_as_categories(store: CasStore, tmp_path: Path) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    amounts = pa.array([decimal.Decimal("1336.85"), None, decimal.Decimal("-20.10")], type=pa.decimal128(18, 2))
    pq.write_table(pa.table({"balance": amounts, "default": [0, 1, 0]}), tmp_path / "ledger.parquet")
    loaded = store.load(imported(store, [tmp_path / "ledger.parquet"]))
    assert loaded.manifest["dtypes"]["balance"] == "float64" and loaded.frame["balance"].tolist()[::2] == [1336.85, -20.10]
    assert loaded.frame["balance"].isna().tolist() == [False, True, False]


def test_several_files_are_concatenated_in_manifest_order(store: CasStore, added: str) -> None:
    frame = store.load(added).frame
    assert len(frame) == 60 and list(frame["customer_id"][:2]) == ["C100000", "C100001"]
    assert frame["customer_id"].iloc[40] == "C100040"


def _link(sources: Path) -> Path:
    (sources / "linked.csv").symlink_to(sources / "part-a.csv")
    return sources / "linked.csv"


def _named(name: str, body: bytes) -> Callable[[Path], Path]:
    def make(sources: Path) -> Path:
        (sources / name).write_bytes(body)
        return sources / name

    return make


def _other_schema(sources: Path) -> Path:
    (sources / "other.csv").write_text("a,b\n1,2\n")
    return sources / "other.csv"


BAD_SOURCES = {
    "text file": _named("notes.txt", b"a,b\n1,2\n"),
    "uppercase suffix": _named("DATA.CSV", b"a,b\n1,2\n"),
    "directory": lambda s: s,
    "symlink": _link,
    "empty csv": _named("empty.csv", b""),
    "not utf-8": _named("latin.csv", "name\nJosé\n".encode("latin-1")),
    "corrupt parquet": _named("broken.parquet", b"PAR1 not really parquet"),
    "different schema": _other_schema,
    "missing file": lambda s: s / "absent.csv",
}


@pytest.mark.parametrize("kind", BAD_SOURCES)
def test_add_refuses_unusable_files_and_writes_nothing(store: CasStore, sources: Path, kind: str) -> None:
    bad = BAD_SOURCES[kind](sources)
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [sources / "part-a.csv", bad])
    assert refused.value.rule_id == "data.add" and refused.value.remediation
    assert not (store.workspace / "data").exists()


def test_a_part_whose_columns_differ_is_refused_naming_each_difference(store: CasStore, sources: Path) -> None:
    frame = pd.read_csv(sources / "part-b.csv")
    first = pd.read_csv(sources / "part-a.csv")
    dropped, retyped = first.columns[1], next(c for c in first.columns if str(first[c].dtype) == "int64")
    frame = frame.drop(columns=[dropped]).assign(**{retyped: frame[retyped].astype("float64") + 0.5, "extra": 1})
    frame.to_csv(sources / "part-b.csv", index=False)
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [sources / "part-a.csv", sources / "part-b.csv"])
    reason = refused.value.reason
    assert reason.startswith("part-b.csv has other columns or dtypes than part-a.csv: ")
    assert f'it lacks "{dropped}"; it adds "extra"; "{retyped}" is float64 there, int64 in the first file' in reason, reason
    assert not (store.workspace / "data").exists()


def test_add_refuses_duplicate_names_and_too_many_files(tmp_path: Path, store: CasStore, sources: Path) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "part-a.csv").write_bytes((sources / "part-a.csv").read_bytes())
    with pytest.raises(InvalidInput, match="several files are named"):
        add_dataset(store, [sources / "part-a.csv", twin / "part-a.csv"])
    with pytest.raises(InvalidInput, match="more than datasets.max_files"):
        add_dataset(store, [sources / "part-a.csv"] * 9)
    assert not (store.workspace / "data").exists()


def test_a_hard_linked_source_is_imported_as_a_single_link_copy(store: CasStore, sources: Path) -> None:
    os.link(sources / "part-a.csv", sources / "twin.csv")
    added = add_dataset(store, [sources / "twin.csv"])
    assert (dataset_dir(store, added.content_hash) / "twin.csv").stat().st_nlink == 1
    assert store.verify(added.content_hash, registered=False).files[0].path == "twin.csv"


def test_stored_bytes_alone_are_not_a_usable_dataset_until_the_import_is_recorded(store: CasStore, sources: Path) -> None:
    stored = add_dataset(store, [sources / "part-a.csv"])
    with pytest.raises(PolicyDenied) as denied:
        store.load(stored.content_hash)
    assert denied.value.rule_id == "data.registered" and "mlgate data add" in denied.value.remediation
    assert imported(store, [sources / "part-a.csv"]) == stored.content_hash
    assert len(store.load(stored.content_hash).frame) == 40


def test_the_import_record_names_the_files_never_the_operator_paths(store: CasStore, sources: Path, added: str) -> None:
    record = json.loads(store.registry.audit_path.read_text().splitlines()[-1])
    assert record["kind"] == "dataset_import" and record["content_hash"] == added and record["principal"] == OPERATOR.name
    assert [f["name"] for f in record["files"]] == ["part-a.csv", "part-b.csv"] and str(sources) not in json.dumps(record)
    assert record["rows"] == 60 and record["schema_hash"] == store.load(added).manifest["schema_hash"]


def test_add_refuses_to_reuse_an_existing_directory_that_fails_verification(store: CasStore, sources: Path, added: str) -> None:
    with writable(dataset_dir(store, added)) as folder:
        (folder / "stray.csv").write_text("x\n1\n")
    with pytest.raises(IntegrityError, match="already exists but fails verification") as refused:
        add_dataset(store, [sources / "part-a.csv", sources / "part-b.csv"])
    assert "move that directory" in refused.value.remediation


def test_a_symlinked_shadow_directory_is_refused_on_import(tmp_path: Path, store: CasStore, sources: Path) -> None:
    elsewhere = tmp_path / "elsewhere-shadow"
    elsewhere.mkdir()
    (store.workspace / "data").mkdir()
    (store.workspace / "data" / "shadow").symlink_to(elsewhere)
    with pytest.raises(IntegrityError) as refused:
        add_dataset(store, [sources / "part-a.csv"])
    assert refused.value.rule_id == "data.shadow_only" and not list(elsewhere.iterdir())


# --- column names: one rule with features.exclude (policies/column_names.py) -------------------

HEADERS = {
    "tab": (b"income,loan\tstatus,grade\n1,2,A\n", 2, '"loan\\tstatus"', "U+0009"),
    "quoted_newline": (b'income,"loan\nstatus",grade\n1,2,A\n', 2, '"loan\\nstatus"', "U+000A"),
    "right_to_left_override": ("income,grade,loan\u202esutats\n1,A,2\n".encode(), 3, '"loan\\u202esutats"', "U+202E"),
    "paragraph_separator": ("income\u2029Total,grade\n1,A\n".encode(), 1, '"income\\u2029Total"', "U+2029"),
    "tag_characters": ("income,grade\U000e0069\U000e0067\n1,A\n".encode(), 2, '"grade\\udb40\\udc69\\udb40\\udc67"', "U+E0069"),
    "over_long": (b"income," + b"x" * 257 + b"\n1,2\n", 2, '"' + "x" * 60, "257 characters"),
}


@pytest.mark.parametrize(("header", "position", "spelling", "says"), HEADERS.values(), ids=HEADERS.keys())
def test_a_column_name_that_can_forge_text_refuses_the_import_and_records_nothing(
    store: CasStore, tmp_path: Path, header: bytes, position: int, spelling: str, says: str
) -> None:
    (tmp_path / "odd.csv").write_bytes(header)
    with pytest.raises(InvalidInput) as refused:
        imported(store, [tmp_path / "odd.csv"])
    reason = refused.value.reason
    assert refused.value.rule_id == "data.column_names" and f"column {position} of " in reason and spelling in reason and says in reason
    assert reason.isascii() and "\n" not in reason  # the name itself cannot forge the message
    assert "rename" in refused.value.remediation and "mlgate data add" in refused.value.remediation
    assert not (store.workspace / "data").exists() and store.registry.entries()[0] == {}
    assert "dataset_import" not in (store.registry.audit_path.read_text() if store.registry.audit_path.exists() else "")


def test_a_parquet_column_with_an_empty_name_is_refused(store: CasStore, tmp_path: Path) -> None:
    pd.DataFrame({"income": [1.0], "": ["A"]}).to_parquet(tmp_path / "empty-name.parquet", index=False)
    with pytest.raises(InvalidInput, match=r'column 2 of 2, "": it is empty') as refused:
        add_dataset(store, [tmp_path / "empty-name.parquet"])
    assert refused.value.rule_id == "data.column_names" and not (store.workspace / "data").exists()


def test_every_refused_column_is_named_in_one_refusal(store: CasStore, tmp_path: Path) -> None:
    (tmp_path / "odd.csv").write_bytes("a\tb,income,c\u2066d\n1,2,3\n".encode())
    with pytest.raises(InvalidInput) as refused:
        add_dataset(store, [tmp_path / "odd.csv"])
    assert 'column 1 of 3, "a\\tb"' in refused.value.reason and 'column 3 of 3, "c\\u2066d"' in refused.value.reason


def test_zero_width_and_full_width_column_names_are_imported_as_spelled(store: CasStore, tmp_path: Path) -> None:
    names = ["loan\u200bstatus", "ｌｏａｎ_ｓｔａｔｕｓ", "\ufeffincome", "e\u0301tat"]
    (tmp_path / "wide.csv").write_text(",".join(["grade", *names]) + "\nA,1,2,3,4\n", encoding="utf-8")
    content_hash = imported(store, [tmp_path / "wide.csv"])
    assert list(store.load(content_hash).frame.columns) == ["grade", *names]
