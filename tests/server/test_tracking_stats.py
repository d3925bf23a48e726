"""Planner statistics of the embedded sqlite tracking store (server/tracking_stats.py), on a real
MLflow sqlite store: when they are gathered, and that MLflow's metric-sorted search then plans with
an index instead of rescanning the metric subquery for every run."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.leakage import CLEAN, LEAKAGE_TAG
from server.tracking import MlflowTracking, experiment_name
from server.tracking_stats import GROWTH, LOCK_WAIT_S, MIN_RUNS, is_stale, refresh, sqlite_path
from tools.run_views import RUN_KIND_TAG
from tools.run_evidence import best_prior_filter

METRIC = "val_roc_auc"
# the tags run_experiment filters its best prior run by (tools/experiment_report.py)
RUN_TAGS = {RUN_KIND_TAG: "experiment", LEAKAGE_TAG: CLEAN}
# SQLite (3.40) keeps scanning a store of up to about 48 runs even with statistics: cheap there
INDEXED_FROM = 64
DATASET = "d" * 64
PRIOR_FILTER = f"tags.`{RUN_KIND_TAG}` = 'experiment' and {best_prior_filter(DATASET)}"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "mlflow.db"


@pytest.fixture
def tracking(store: Path, tmp_path: Path) -> MlflowTracking:
    return MlflowTracking(f"sqlite:///{store}", tmp_path / "artifacts")


def finish_runs(tracking: MlflowTracking, experiment_id: str, count: int) -> None:
    for i in range(count):
        run_id = tracking.start_run(experiment_id, RUN_TAGS)
        tracking.log_params(run_id, {"dataset_content_hash": DATASET})
        tracking.log_metrics(run_id, {METRIC: 0.6 + i / 1000})
        tracking.end_run(run_id, "FINISHED")


def described_runs(store: Path) -> int | None:
    with sqlite3.connect(store) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            return None
        row = db.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs'").fetchone()
    return int(row[0].split()[0]) if row else None


def test_statistics_are_gathered_when_the_store_reaches_the_minimum_number_of_runs(tracking: MlflowTracking, store: Path) -> None:
    experiment_id = tracking.get_or_create_experiment(experiment_name("acme-bank", "stats"))
    finish_runs(tracking, experiment_id, MIN_RUNS - 1)
    assert described_runs(store) is None
    finish_runs(tracking, experiment_id, 1)
    assert described_runs(store) == MIN_RUNS


def test_statistics_are_gathered_again_only_once_the_runs_have_doubled(tracking: MlflowTracking, store: Path) -> None:
    experiment_id = tracking.get_or_create_experiment(experiment_name("acme-bank", "stats"))
    finish_runs(tracking, experiment_id, MIN_RUNS)
    finish_runs(tracking, experiment_id, MIN_RUNS - 1)
    assert described_runs(store) == MIN_RUNS
    finish_runs(tracking, experiment_id, 1)
    assert described_runs(store) == 2 * MIN_RUNS


@pytest.fixture
def captured_sql() -> Iterator[list[tuple[str, object]]]:
    """Every SELECT MLflow's SQLAlchemy engines send, with its parameters."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001 - SQLAlchemy's hook signature
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", capture)
    yield seen
    event.remove(Engine, "before_cursor_execute", capture)


def best_prior_plan(tracking: MlflowTracking, experiment_id: str, store: Path, captured: list[tuple[str, object]]) -> str:
    """SQLite's plan for the run search MLflow sends for the best-prior-run query."""
    captured.clear()
    assert tracking.best_prior_run(experiment_id, METRIC, extra_filter=PRIOR_FILTER) is not None
    statement, parameters = next((s, p) for s, p in captured if "latest_metrics" in s and "ORDER BY" in s)
    with sqlite3.connect(store) as db:
        return "\n".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))


def test_metric_sorted_search_rescans_the_metric_subquery_per_run_without_statistics_and_uses_an_index_with_them(
    tracking: MlflowTracking, store: Path, captured_sql: list[tuple[str, object]]
) -> None:
    experiment_id = tracking.get_or_create_experiment(experiment_name("acme-bank", "plan"))
    finish_runs(tracking, experiment_id, INDEXED_FROM)
    with sqlite3.connect(store) as db:
        db.execute("DROP TABLE sqlite_stat1")
    without = best_prior_plan(tracking, experiment_id, store, captured_sql)
    assert refresh(tracking.tracking_uri)
    with_stats = best_prior_plan(tracking, experiment_id, store, captured_sql)
    assert "SCAN anon_1" in without and "AUTOMATIC" not in without
    assert "AUTOMATIC COVERING INDEX" in with_stats and "SCAN anon_1" not in with_stats


def test_a_connection_opened_before_a_refresh_plans_with_the_new_statistics(
    tracking: MlflowTracking, store: Path, captured_sql: list[tuple[str, object]]
) -> None:
    """MLflow's pooled connections load statistics once; stale ones (16 runs) keep the per-run
    rescan at any size until the refresh makes every open connection reload them."""
    experiment_id = tracking.get_or_create_experiment(experiment_name("acme-bank", "pool"))
    finish_runs(tracking, experiment_id, MIN_RUNS)
    with sqlite3.connect(store) as db:
        stale = db.execute("SELECT tbl, idx, stat FROM sqlite_stat1").fetchall()
    finish_runs(tracking, experiment_id, INDEXED_FROM - MIN_RUNS)
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM sqlite_stat1")
        db.executemany("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", stale)
    captured_sql.clear()
    tracking.best_prior_run(experiment_id, METRIC, extra_filter=PRIOR_FILTER)
    statement, parameters = next((s, p) for s, p in captured_sql if "latest_metrics" in s and "ORDER BY" in s)
    # open before the refresh, as MLflow's pool is; EXPLAIN runs no transaction, so a cached EXPLAIN
    # would never see the schema change a real query is re-prepared for
    pooled = sqlite3.connect(store, cached_statements=0)
    pooled.execute("SELECT count(*) FROM runs").fetchall()
    plan = lambda: "\n".join(row[-1] for row in pooled.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))  # noqa: E731
    assert "SCAN anon_1" in plan()
    assert refresh(tracking.tracking_uri)
    pooled.execute("SELECT count(*) FROM runs").fetchall()  # its next query, as MLflow's would run one
    assert "AUTOMATIC COVERING INDEX" in plan() and "SCAN anon_1" not in plan()
    pooled.close()
    with sqlite3.connect(store) as db:
        assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'mlgate_planner_reload'").fetchone()


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "mlflow.db"
    assert refresh(f"sqlite:///{missing}") is False
    assert not missing.exists()


def test_a_database_without_mlflow_tables_is_left_as_it_was(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    assert refresh(f"sqlite:///{other}") is False
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["notes"]


def test_a_locked_store_is_not_waited_for_and_is_refreshed_later(tracking: MlflowTracking, store: Path) -> None:
    experiment_id = tracking.get_or_create_experiment(experiment_name("acme-bank", "locked"))
    finish_runs(tracking, experiment_id, MIN_RUNS)
    with sqlite3.connect(store) as db:
        db.execute("DROP TABLE sqlite_stat1")
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        assert refresh(tracking.tracking_uri) is False
        assert time.monotonic() - started < LOCK_WAIT_S + 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert refresh(tracking.tracking_uri) is True
    assert described_runs(store) == MIN_RUNS


@pytest.mark.parametrize("uri", ["postgresql://mlflow@127.0.0.1:5432/mlflow", "http://127.0.0.1:5000", "sqlite:///:memory:", "file:///tmp/mlruns", "sqlite://"])
def test_stores_other_than_a_sqlite_file_are_left_to_their_own_statistics(uri: str) -> None:
    assert sqlite_path(uri) is None
    assert refresh(uri) is False


def test_a_sqlite_uri_names_its_database_file() -> None:
    assert sqlite_path("sqlite:////var/lib/mlgate/.mlgate/mlflow.db") == Path("/var/lib/mlgate/.mlgate/mlflow.db")
    assert sqlite_path("sqlite:///relative/mlflow.db?timeout=20") == Path("relative/mlflow.db")


@pytest.mark.parametrize(
    ("runs", "described", "stale"),
    [(MIN_RUNS - 1, None, False), (MIN_RUNS, None, True), (100, 60, False), (int(GROWTH * 60), 60, True), (10_000, 20, True)],
)
def test_statistics_are_stale_when_missing_or_describing_under_half_the_runs(runs: int, described: int | None, stale: bool) -> None:
    assert is_stale(runs, described) is stale
