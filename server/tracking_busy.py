"""A locked or unreachable tracking store, told apart from other failures so the enforcer can
answer it with a refusal an agent can act on.

sqlite lets one writer at a time; MLflow waits out its busy timeout (20 s) and then raises an error
whose text is the SQL it ran and "database is locked". That text must not reach a client, and
"failed unexpectedly" does not tell the agent that waiting is the remedy. Any other database
"operational" error (a PostgreSQL server restarting or refusing connections, sqlite failing to
open its file under contention) MLflow reports as TEMPORARILY_UNAVAILABLE: the agent is told to
retry and the operator what to look at, never the driver's text (it can hold the URI)."""

from __future__ import annotations

from tools.errors import GovernanceError

LOCKED_TEXT = "database is locked"
TEMPORARY_CODE = "TEMPORARILY_UNAVAILABLE"  # MLflow's error_code for a database OperationalError
DRIVER_ERRORS = ("OperationalError",)  # sqlite3, psycopg2 and SQLAlchemy name it alike


class TrackingBusy(GovernanceError):
    rule_id = "tracking.busy"


def busy() -> TrackingBusy:
    return TrackingBusy(
        "the MLflow tracking store is locked by another process and stayed locked past its busy timeout",
        "retry in a minute; if it persists, ask the operator which process holds the tracking database (mlflow.db) open",
    )


class TrackingUnavailable(GovernanceError):
    rule_id = "tracking.unavailable"


def unavailable() -> TrackingUnavailable:
    return TrackingUnavailable(
        "the MLflow tracking store did not answer: its database reported an error it calls temporary (restarting, refusing connections, out of connections or out of disk space)",
        "retry in a minute; if it persists, ask the operator to check the tracking database named by tracking_uri",
    )


def _chain(exc: BaseException, depth: int = 8) -> list[BaseException]:
    """`exc` and the errors it was raised from, nearest first."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < depth:
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


def is_locked(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is sqlite's lock timeout."""
    return any(LOCKED_TEXT in str(seen) for seen in _chain(exc))


def is_temporary(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is a database error MLflow calls temporary."""
    return any(getattr(seen, "error_code", None) == TEMPORARY_CODE or type(seen).__name__ in DRIVER_ERRORS for seen in _chain(exc))


def store_refusal(exc: BaseException) -> GovernanceError | None:
    """The refusal an agent can act on for a store that is locked or not answering, else None."""
    if is_locked(exc):
        return busy()
    return unavailable() if is_temporary(exc) else None
