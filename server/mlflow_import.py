"""MLflow, imported once per process under one lock, and its client built under the same lock.

MLflow's package imports itself in cycles (mlflow -> mlflow.store -> ... -> mlflow). Two threads
importing different parts of it at the same moment (the start-up recovery thread and the first
request) deadlock on Python's per-module import locks or see a half-initialised `mlflow`
(`_DeadlockError`, "partially initialized module 'mlflow' has no attribute 'version'"). So every
first use in mlgate goes through `mlflow_module`: the first caller imports MLflow and every module
mlgate takes from it while the others wait; later calls are a dictionary lookup. A client's
constructor opens its store (importing the SQL stores, creating a sqlite store's tables), so it is
built under the lock too (`mlflow_client`).

The import stays deferred (seconds): a server that never touches a run does not pay for it at
start (bench/cold_start.py). MLflow's usage telemetry and its printing are switched off first.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from server.files import private_file

# everything mlgate imports from MLflow: once these are loaded no `from mlflow.x import y` in
# server/ imports anything
MODULES = ("mlflow", "mlflow.entities", "mlflow.exceptions", "mlflow.store.db.utils")
SQLITE_FILE = "sqlite:///"
# the registry's SQL store, which a sqlite or database client opens on its first registry call
SQL_REGISTRY = "mlflow.store.model_registry.sqlalchemy_store"
# MLflow prints a pointer to its "agent skills" on import when it sees a coding agent's environment
# variables (Claude Code, Codex): noise on the server's stderr, and nothing an mlgate agent may use.
QUIET_MLFLOW = {"MLFLOW_DISABLE_AGENT_HINT": "1"}
_LOCK = threading.RLock()
_loaded = threading.Event()


def _quiet() -> None:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # MLflow prints "View run at: <tracking URI>" to stdout on every ended run: the URI may carry a
    # password, and stdout is the MCP channel in stdio mode
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ.update(QUIET_MLFLOW)
    # "Creating initial MLflow database tables..." at INFO on the first use of a sqlite store: noise
    # on an operator's terminal (`mlgate models list`) and on the stdio server's stderr
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def mlflow_module(name: str = "mlflow") -> ModuleType:
    """`name` (an MLflow module), imported with MLflow's whole first import under the lock."""
    if not _loaded.is_set() or name not in sys.modules:
        with _LOCK:
            if not _loaded.is_set():
                _quiet()
                for module in MODULES:
                    importlib.import_module(module)
                _loaded.set()
            importlib.import_module(name)
    return sys.modules[name]


def _private_sqlite_store(tracking_uri: str) -> None:
    """A sqlite store's file made 0600 before MLflow creates it with the umask's mode."""
    if tracking_uri.startswith(SQLITE_FILE):
        path = Path(tracking_uri.removeprefix(SQLITE_FILE).split("?", 1)[0])
        if path.parent.is_dir():
            private_file(path)


def mlflow_client(tracking_uri: str, *, sql_registry: bool) -> Any:
    """A MlflowClient for `tracking_uri` (also its registry), built under the import lock: its
    constructor opens the store. `sql_registry`: the store is a database (sqlite included), whose
    registry store is imported here rather than at a later first registry call."""
    mlflow = mlflow_module()
    _private_sqlite_store(tracking_uri)
    with _LOCK:
        if sql_registry:
            importlib.import_module(SQL_REGISTRY)
        return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
