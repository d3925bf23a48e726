"""Read-only ports for resources and prompts: views over the server's adapters that cannot write.

A resource read must never change state. The MLflow view opens the store only when it already
exists and is fully initialised (opening an empty sqlite file would create MLflow's tables and its
Default experiment); before the first run it answers empty. The audit view can only tail, the
registry view only look up. Calls block; the enforcement point runs reads in a worker thread.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from server.mlflow_import import mlflow_module
from tools.errors import IntegrityError, NotFound

SQLITE_PREFIX = "sqlite:///"


def unreadable() -> IntegrityError:
    return IntegrityError(
        "the tracking store cannot be read",
        "ask the operator to check the MLflow store (`mlgate audit tail` shows the failed read)",
        rule_id="tracking.unavailable",
    )


@dataclass(frozen=True)
class ReadPorts:
    """What a resource or prompt may use; every attribute is a read-only view (None: absent)."""

    settings: Any
    standards: Any = None  # committed standards bytes and the policy config (git reads)
    cas: Any = None  # list_hashes / load: verify and parse, never write
    audit: Any = None  # AuditTail: tail only
    tracking: Any = None  # ReadOnlyTracking
    run_artifacts: Any = None  # JSON artifacts of runs, through the read-only tracking view
    registry: Any = None  # ReadOnlyRegistry


def _expected_mlflow_tables() -> set[str]:
    """The tables MLflow creates on first open (its ORM metadata); a store missing one would be
    migrated on open, which is a write."""
    return set(mlflow_module("mlflow.store.db.utils").Base.metadata.tables)


def sqlite_store_ready(path: Path) -> bool:
    """True when `path` is an MLflow sqlite store MLflow would open without writing.
    Raises IntegrityError when the file exists but is not a readable database."""
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "experiments" not in tables:
                return False
            has_default = db.execute("SELECT 1 FROM experiments WHERE experiment_id = 0").fetchone() is not None
    except sqlite3.Error:
        raise unreadable() from None
    return has_default and _expected_mlflow_tables() <= tables


def _store_exists(uri: str) -> bool:
    scheme = uri.split(":", 1)[0].lower() if "://" in uri else "file"
    if uri.lower().startswith(SQLITE_PREFIX):
        return sqlite_store_ready(Path(uri[len(SQLITE_PREFIX) :]))
    if scheme == "file":
        return Path(uri.removeprefix("file://")).is_dir()
    return True


class ReadOnlyTracking:
    """The lookups resources need, over the server's MLflow adapter, without ever creating a store,
    a table or an experiment. Remote tracking servers and non-sqlite databases are assumed to exist
    (the operator configured them); their reads create nothing locally."""

    def __init__(self, tracking: Any) -> None:
        self._tracking = tracking
        self._ready = False

    def ready(self) -> bool:
        """Whether the store exists. Raises IntegrityError for an unreadable sqlite file."""
        if not self._ready:
            uri = str(self._tracking.tracking_uri)
            self._ready = _store_exists(uri)
        return self._ready

    @property
    def client(self) -> Any:
        """The MLflow client, only once the store exists. Raises NotFound before."""
        if not self.ready():
            raise NotFound("no run has been tracked yet", "run_experiment creates the first run", rule_id="tracking.empty")
        return self._tracking.client

    def find_experiment(self, name: str) -> str | None:
        return self._tracking.find_experiment(name) if self.ready() else None

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Raises NotFound for an unknown run (every run, before the store exists)."""
        if not self.ready():
            raise NotFound(f"no run {str(run_id)[:40]!r}", "list runs to find the id", rule_id="tracking.run_not_found")
        return self._tracking.get_run(run_id)

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None, max_results: int = 100) -> list[dict[str, Any]]:
        return self._tracking.search_runs(experiment_ids, filter_string, order_by, max_results) if self.ready() else []

    def list_artifacts(self, run_id: str, limit: int = 500) -> list[str]:
        return self._tracking.list_artifacts(run_id, limit) if self.ready() else []

    def alias_version(self, name: str, alias: str) -> str | None:
        return self._tracking.alias_version(name, alias) if self.ready() else None


class ReadOnlyRegistry:
    """Registered models and versions, looked up only (no alias moves, no history writes)."""

    def __init__(self, registry: Any, tracking: ReadOnlyTracking) -> None:
        self._registry = registry
        self._tracking = tracking

    def list_models(self) -> list[dict[str, Any]]:
        return self._registry.list_models() if self._tracking.ready() else []

    def model(self, name: str) -> dict[str, Any] | None:
        return self._registry.model(name) if self._tracking.ready() else None

    def alias_version(self, name: str, alias: str) -> str | None:
        return self._registry.alias_version(name, alias) if self._tracking.ready() else None

    def version(self, name: str, version: str) -> dict[str, Any]:
        """Raises NotFound."""
        if not self._tracking.ready():
            raise NotFound(f"no version {version} of model {name}", "list models with `mlgate models list`", rule_id="registry.not_found")
        return self._registry.version(name, version)


class ReadOnlyArtifacts:
    """JSON artifacts of a run (None before the store exists)."""

    def __init__(self, tracking: ReadOnlyTracking) -> None:
        from server.pr_providers import RunArtifacts  # noqa: PLC0415 (pulls the PR providers in)

        self._tracking = tracking
        self._artifacts = RunArtifacts(tracking)

    def read_json(self, run_id: str, name: str, limit: int | None = None) -> Any | None:
        return self._artifacts.read_json(run_id, name, limit) if self._tracking.ready() else None


class AuditTail:
    """The audit chain, tail only: a resource cannot append."""

    def __init__(self, chain: Any) -> None:
        self._chain = chain

    def tail(self, n: int | None = None) -> list[dict[str, Any]]:
        return self._chain.tail(n)


def read_ports(ports: Any) -> ReadPorts:
    """Read-only views over the server's ports (the same adapters, so caches are shared)."""
    tracking = ReadOnlyTracking(ports.tracking) if ports.tracking is not None else None
    return ReadPorts(
        settings=ports.settings,
        standards=ports.standards,
        cas=ports.cas,
        audit=AuditTail(ports.audit) if ports.audit is not None else None,
        tracking=tracking,
        run_artifacts=ReadOnlyArtifacts(tracking) if tracking is not None else None,
        registry=ReadOnlyRegistry(ports.registry, tracking) if ports.registry is not None and tracking is not None else None,
    )
