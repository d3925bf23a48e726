"""A locked sqlite tracking store, told apart from other failures so the enforcer can answer it with
a refusal an agent can act on.

sqlite lets one writer at a time; MLflow waits out its busy timeout (20 s) and then raises an error
whose text is the SQL it ran and "database is locked". That text must not reach a client, and
"failed unexpectedly" does not tell the agent that waiting is the remedy."""

from __future__ import annotations

from tools.errors import GovernanceError

LOCKED_TEXT = "database is locked"


class TrackingBusy(GovernanceError):
    rule_id = "tracking.busy"


def busy() -> TrackingBusy:
    return TrackingBusy(
        "the MLflow tracking store is locked by another process and stayed locked past its busy timeout",
        "retry in a minute; if it persists, ask the operator which process holds the tracking database (mlflow.db) open",
    )


def is_locked(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is sqlite's lock timeout."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if LOCKED_TEXT in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
