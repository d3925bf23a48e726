"""Query-planner statistics for the embedded sqlite tracking store.

MLflow's metric-sorted run search (list_runs sorted by a metric, and the best-prior-run query each
run_experiment makes) left-joins a materialised subquery of `latest_metrics`. Without statistics
in `sqlite_stat1`, SQLite scans that subquery once per candidate run: the query grows with the
square of the number of runs (bench/scale.py measured 39 s at 10 000 runs). With statistics, even
ones gathered when the store held 20 runs, SQLite gives the subquery an automatic index and the
query stays fast. Statistics gathered at 16 runs are as bad as none at 10 000 (10.9 s), so they are
gathered again whenever the runs table has grown past twice the size they describe: ANALYZE runs
O(log n) times over a store's life, and a run's end pays one `count(*)` otherwise. Connections
already open (MLflow's pool) keep the statistics they loaded until the schema changes, so each
refresh also changes it (a table created and dropped in the same transaction).

Only for a store that already has MLflow's tables: a read-only caller never creates the database,
and ANALYZE writes nothing but `sqlite_stat1`. A locked store is not waited for: the statistics
are an optimisation, the run that triggered them is already recorded. PostgreSQL and tracking
servers keep their own statistics (autovacuum), so other URIs are left alone.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from urllib.parse import quote

from server.tracking_store import scheme_of

MIN_RUNS = 16  # below this, SQLite's defaults already plan well and a refresh would churn
GROWTH = 2.0
LOCK_WAIT_S = 0.5
STATS_TABLES = ("runs", "tags", "params", "latest_metrics")
RELOAD_TABLE = "mlgate_planner_reload"

log = logging.getLogger(__name__)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI (no query string), None for any other store."""
    if scheme_of(tracking_uri) != "sqlite" or not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _counted_runs(db: sqlite3.Connection) -> tuple[int, int | None]:
    """(runs now, runs the statistics were gathered at, None when there are none)."""
    runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    has_stats = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").fetchone()
    if not has_stats:
        return runs, None
    row = db.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' AND stat IS NOT NULL LIMIT 1").fetchone()
    return runs, int(row[0].split()[0]) if row else None


def is_stale(runs: int, described: int | None) -> bool:
    """Whether statistics describing `described` runs are worth gathering again at `runs`."""
    if runs < MIN_RUNS:
        return False
    return described is None or runs >= GROWTH * described


def refresh(tracking_uri: str) -> bool:
    """Gather statistics for the run tables when they are missing or describe less than half the
    runs there are now. Returns whether ANALYZE ran; never raises for a locked or odd store."""
    path = sqlite_path(tracking_uri)
    if path is None or not path.is_file():
        return False
    try:
        return _refresh(path)
    except sqlite3.Error as error:  # locked, read-only, not (yet) an MLflow store: try at the next run's end
        log.debug("planner statistics not refreshed: %s", type(error).__name__)
        return False


def _refresh(path: Path) -> bool:
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=LOCK_WAIT_S, isolation_level=None)
    try:
        runs, described = _counted_runs(db)
        if not is_stale(runs, described):
            return False
        db.execute("BEGIN IMMEDIATE")
        for table in STATS_TABLES:
            db.execute(f"ANALYZE {table}")  # names from STATS_TABLES only
        # other connections (MLflow's pool) read statistics only when they reload the schema, which
        # they do when its version changes: a table made and dropped in the same transaction
        db.execute(f"CREATE TABLE IF NOT EXISTS {RELOAD_TABLE} (x)")
        db.execute(f"DROP TABLE {RELOAD_TABLE}")
        db.execute("COMMIT")
        return True
    finally:
        db.close()
