"""`mlgate tracking migrate` through server.cli.main: the mistakes made before any database is
reached (the PostgreSQL migration itself: tests/server/test_postgres_migrate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main
from server.settings import load_settings


@pytest.mark.parametrize("uri", ["mysql://ops:s3cr3t-pw@127.0.0.1:1/mlflow", "mssql://ops:s3cr3t-pw@127.0.0.1:1/mlflow"])
def test_a_uri_whose_driver_is_not_installed_exits_2_with_what_to_do_and_no_password(workspace: Path, tmp_path: Path, capsys, uri: str) -> None:
    assert main(["models", "list", "--workspace", str(workspace)]) == 0  # the embedded sqlite store, created on first use
    assert main(["tracking", "migrate", "--to", uri, "--artifacts", str(tmp_path / "artifacts"), "--workspace", str(workspace)]) == 2
    captured = capsys.readouterr()
    assert "no database driver for" in captured.err and "what to do: name the installed driver" in captured.err
    assert "s3cr3t-pw" not in captured.out + captured.err
    assert not (tmp_path / "artifacts").exists() and not (load_settings(workspace).state_dir / "tracking-migrations").exists()
