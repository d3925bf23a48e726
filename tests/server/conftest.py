"""Fixtures shared by the tracking-server tests of this directory: one private PostgreSQL cluster
and one `mlflow server` on it per test session (tests/postgres.py)."""

from tests.postgres import postgres, tracking_server

__all__ = ["postgres", "tracking_server"]
