"""`mlgate tracking migrate` through server.cli.main: the mistakes made before any database is
reached (the PostgreSQL migration itself: tests/server/test_postgres_migrate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.audit import read_tail
from server.cli import main
from server.settings import Settings, load_settings
from tests.credentials import use_token


@pytest.mark.parametrize("uri", ["mysql://ops:s3cr3t-pw@127.0.0.1:1/mlflow", "mssql://ops:s3cr3t-pw@127.0.0.1:1/mlflow"])
def test_a_uri_whose_driver_is_not_installed_exits_2_with_what_to_do_and_no_password(workspace: Path, settings: Settings, tmp_path: Path, capsys, monkeypatch, uri: str) -> None:
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert main(["models", "list", "--workspace", str(workspace)]) == 0  # the embedded sqlite store, created on first use
    assert main(["tracking", "migrate", "--to", uri, "--artifacts", str(tmp_path / "artifacts"), "--workspace", str(workspace)]) == 2
    captured = capsys.readouterr()
    assert "no database driver for" in captured.err and "what to do: name the installed driver" in captured.err
    assert "s3cr3t-pw" not in captured.out + captured.err
    assert not (tmp_path / "artifacts").exists() and not (load_settings(workspace).state_dir / "tracking-migrations").exists()


@pytest.mark.parametrize(("holder", "role", "says"), [(None, None, "needs a credential of role operator"), ("hana", "human", "has role human")], ids=["no_token", "human_token"])
def test_migrating_the_store_needs_an_operator_token_and_writes_nothing_without_one(
    workspace: Path, settings: Settings, tmp_path: Path, capsys, monkeypatch, holder: str | None, role: str | None, says: str
) -> None:
    """The store holds every run and the registry: who moved it is named by a credential, not by the OS user."""
    monkeypatch.delenv("MLGATE_TOKEN", raising=False)
    if holder is not None:
        use_token(monkeypatch, settings.state_dir, holder, role)
    before = read_tail(settings.audit_path, 1)
    assert main(["tracking", "migrate", "--to", "postgresql+psycopg2://ops@127.0.0.1:1/x", "--artifacts", str(tmp_path / "artifacts"), "--workspace", str(workspace)]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "artifacts").exists() and not (settings.state_dir / "tracking-migrations").exists()
    assert read_tail(settings.audit_path, 1) == before
