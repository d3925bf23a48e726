"""Moving a workspace's embedded sqlite MLflow store into a shared database (PostgreSQL, MySQL, ...).

MLflow has no sqlite-to-server migrator, and copying through MlflowClient would give every run a
new id, breaking what refers to run ids: audit records, PR records, approvals (bound to a run),
the alias history, reproduction and seed tags. So the store is copied table by table, rows as
they are, into a target database that MLflow initialised with the same schema version:

1. a consistent snapshot of the sqlite file (sqlite's online backup API);
2. artifact locations in the snapshot rewritten from `<state_dir>/mlartifacts` to the new
   artifact URI (params, metrics and tags are the record and are not touched);
3. the target initialised by MLflow (its own schema migrations), refused unless it holds no runs,
   no registered models and no experiment but MLflow's Default; its schema version must equal the
   snapshot's; then every table copied in foreign-key order and PostgreSQL's id sequences moved past
   the copied ids;
4. the artifact files copied to the new artifact directory, each re-hashed after the copy;
5. row counts of every table compared, and a report written (tables, run-id mapping, artifact
   manifest hash) that the caller records in the audit chain.

Run ids, experiment ids and model versions are kept, so the mapping is the identity and every
audit witness on a run still cross-checks. Stop every mlgate server of the workspace first: rows
written to the sqlite store after the snapshot are not copied.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.backup import _copy_sqlite, _replace_prefix, _text_columns, file_sha256
from server.tracking_store import is_database
from tools.errors import InvalidInput

SKIPPED_TABLES = ("alembic_version",)
BATCH_ROWS = 1000


@dataclass
class MigrationReport:
    tables: dict[str, int] = field(default_factory=dict)
    run_ids: dict[str, str] = field(default_factory=dict)
    artifact_files: int = 0
    artifact_bytes: int = 0
    artifact_manifest_sha256: str = ""
    relocated_locations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "run_ids": self.run_ids, "artifact_files": self.artifact_files, "artifact_bytes": self.artifact_bytes,
                "artifact_manifest_sha256": self.artifact_manifest_sha256, "relocated_locations": self.relocated_locations}  # fmt: skip


def _refuse(reason: str, remediation: str) -> InvalidInput:
    return InvalidInput(reason, remediation, rule_id="tracking.migrate")


def migrate_sqlite(source_db: Path, artifacts_dir: Path, target_uri: str, artifacts_to: Path, artifact_uri: str | None = None) -> MigrationReport:
    """Copy the sqlite store `source_db` (artifacts under `artifacts_dir`) into the empty database
    `target_uri`, artifacts into `artifacts_to`, locations rewritten to `artifact_uri` (default:
    `artifacts_to` as a file URI). Raises InvalidInput when the source is missing, the target is
    not a database, not empty, or at another schema version."""
    if not is_database(target_uri):
        raise _refuse("--to must be a database URI (postgresql://, mysql://, mssql://)", "give the database behind the tracking server (its --backend-store-uri), then point tracking_uri at the server")
    if not source_db.is_file():
        raise _refuse(f"no embedded MLflow store at {source_db}", "nothing to migrate: this workspace has no sqlite store")
    clashes = sorted(p.name for p in artifacts_dir.iterdir() if (artifacts_to / p.name).exists()) if artifacts_dir.is_dir() else []
    if clashes:
        raise _refuse(f"{artifacts_to} already holds {clashes[:3]}", "copy artifacts into a new, empty directory")
    report = MigrationReport()
    with tempfile.TemporaryDirectory(prefix="mlgate-migrate-") as scratch:
        snapshot = Path(scratch) / "mlflow.db"
        _copy_sqlite(source_db, snapshot)
        report.relocated_locations = _relocate(snapshot, artifacts_dir.resolve(), artifact_uri or artifacts_to.resolve().as_uri())
        engine = _initialised_target(target_uri, artifacts_to)
        try:
            _copy_tables(snapshot, engine, report)
        finally:
            engine.dispose()
    _copy_artifacts(artifacts_dir, artifacts_to, report)
    return report


def _relocate(snapshot: Path, old_root: Path, new_uri: str) -> int:
    pairs = [(old_root.as_uri(), new_uri.rstrip("/")), (str(old_root), new_uri.rstrip("/"))]
    connection = sqlite3.connect(snapshot)
    try:
        with connection:
            return sum(_replace_prefix(connection, table, column, old, new) for table, column in _text_columns(connection) for old, new in pairs)
    finally:
        connection.close()


def _initialised_target(target_uri: str, artifacts_to: Path) -> Any:
    """The target's engine after MLflow created (or checked) its schema; refused unless empty."""
    import sqlalchemy as sa  # noqa: PLC0415 (deferred: comes with MLflow)

    from server.tracking import _import_mlflow  # noqa: PLC0415

    _import_mlflow()
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore  # noqa: PLC0415
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # noqa: PLC0415

    SqlAlchemyStore(target_uri, artifacts_to.resolve().as_uri())
    RegistryStore(target_uri)
    engine = sa.create_engine(target_uri)
    with engine.connect() as connection:
        counts = [connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() for table in ("runs", "registered_models")]
        experiments = connection.execute(sa.text("SELECT count(*) FROM experiments WHERE experiment_id <> 0")).scalar()
    if any(counts) or experiments:
        engine.dispose()
        raise _refuse("the target database already holds runs, experiments or registered models", "migrate into a new, empty database (createdb), never into one in use")
    return engine


def _copy_tables(snapshot: Path, engine: Any, report: MigrationReport) -> None:
    import sqlalchemy as sa  # noqa: PLC0415

    source = sa.create_engine(f"sqlite:///{snapshot}")
    try:
        target_meta, source_meta = sa.MetaData(), sa.MetaData()
        target_meta.reflect(engine)
        source_meta.reflect(source)
        with source.connect() as reading, engine.begin() as writing:
            _check_versions(reading, writing)
            for table in reversed(target_meta.sorted_tables):
                if table.name not in SKIPPED_TABLES:
                    writing.execute(table.delete())  # MLflow's own Default experiment, made by the initialisation
            for table in target_meta.sorted_tables:
                if table.name in source_meta.tables and table.name not in SKIPPED_TABLES:
                    report.tables[table.name] = _copy_rows(reading, writing, source_meta.tables[table.name], table)
            _move_sequences(writing, target_meta)
            _check_counts(writing, report)
            report.run_ids = {row[0]: row[0] for row in reading.execute(sa.text("SELECT run_uuid FROM runs ORDER BY run_uuid"))}
    finally:
        source.dispose()


def _check_versions(reading: Any, writing: Any) -> None:
    import sqlalchemy as sa  # noqa: PLC0415

    query = sa.text("SELECT version_num FROM alembic_version")
    have, want = reading.execute(query).scalar(), writing.execute(query).scalar()
    if have != want:
        raise _refuse(f"the sqlite store is at MLflow schema {have}, the target at {want}", "run `mlflow db upgrade` on the older one with the MLflow version mlgate uses")


def _copy_rows(reading: Any, writing: Any, source_table: Any, target_table: Any) -> int:
    import sqlalchemy as sa  # noqa: PLC0415

    columns = [c.name for c in target_table.columns if c.name in source_table.columns]
    result = reading.execute(sa.select(*[source_table.c[name] for name in columns]))
    copied = 0
    while rows := result.fetchmany(BATCH_ROWS):
        writing.execute(target_table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        copied += len(rows)
    return copied


def _move_sequences(writing: Any, meta: Any) -> None:
    """PostgreSQL hands out serial ids from sequences that copied rows did not advance."""
    import sqlalchemy as sa  # noqa: PLC0415

    if writing.dialect.name != "postgresql":
        return
    for table in meta.sorted_tables:
        for column in table.primary_key.columns:
            sequence = writing.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}).scalar()
            if sequence:
                writing.execute(sa.text(f'SELECT setval(:s, (SELECT coalesce(max("{column.name}"), 0) + 1 FROM "{table.name}"), false)'), {"s": sequence})


def _check_counts(writing: Any, report: MigrationReport) -> None:
    import sqlalchemy as sa  # noqa: PLC0415

    for name, copied in report.tables.items():
        found = writing.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar()
        if found != copied:
            raise _refuse(f"table {name}: {copied} rows copied, {found} found in the target", "nothing was committed; check the target database and retry")


def _copy_artifacts(artifacts_dir: Path, artifacts_to: Path, report: MigrationReport) -> None:
    """Copy every artifact file, re-hashing the copy; the manifest hash covers path, size, sha256."""
    manifest = hashlib.sha256()
    files = sorted(p for p in artifacts_dir.rglob("*") if p.is_file()) if artifacts_dir.is_dir() else []
    for path in files:
        relative = path.relative_to(artifacts_dir)
        target = artifacts_to / relative
        if target.exists():
            raise _refuse(f"{target} already exists", "copy artifacts into a new, empty directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        digest = file_sha256(path)
        if file_sha256(target) != digest:
            raise _refuse(f"the copy of {relative} differs from its source", "check the target disk and retry into a new directory")
        manifest.update(f"{relative}\t{path.stat().st_size}\t{digest}\n".encode())
        report.artifact_files += 1
        report.artifact_bytes += path.stat().st_size
    report.artifact_manifest_sha256 = manifest.hexdigest()
