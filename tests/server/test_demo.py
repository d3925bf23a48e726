"""`mlgate demo` end to end: stdio MCP client, approval by a separate CLI process, real training."""

from pathlib import Path

import pytest

from server.approval_vouch import vouch_problems
from server.cli import main
from server.settings import load_settings
from server.audit import verify


def test_demo_drives_the_scripted_session_and_leaves_an_intact_audit_chain(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--rows", "800"]) == 0
    out = capfd.readouterr().out
    assert "config.protected_fields" in out and "approved apr-" in out and '"status": "FINISHED"' in out
    assert '"customer_id": "***"' in out
    workspace = tmp_path / "workspace"
    report = verify(load_settings(workspace).audit_path)
    assert report.ok and report.count >= 12
    assert "split.test_size" in (workspace / "logs/protected_overrides.log").read_text()
    assert "by risk-officer (human, token risk-officer:" in out and vouch_problems(load_settings(workspace).state_dir) == []


def test_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    (tmp_path / "workspace" / "keep.txt").write_text("mine")
    assert main(["demo", "--dir", str(tmp_path), "--no-train"]) == 2
    assert (tmp_path / "workspace" / "keep.txt").read_text() == "mine"
