"""`mlgate backup` / `mlgate restore` through server.cli.main on a real workspace."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from server.audit import AuditChain
from server.cli import main
from server.commands.backup import progress_line
from server.settings import load_settings


@pytest.fixture
def audited_workspace(workspace: Path) -> Path:
    chain = AuditChain(load_settings(workspace).audit_path)
    for n in range(4):
        chain.append({"kind": "decision", "tool": "load_dataset", "n": n})
    chain.close()
    return workspace


def _records(workspace: Path, state_dir: Path | None = None) -> list[dict]:
    path = (state_dir or load_settings(workspace).state_dir) / "audit.jsonl"
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _only_backup(dest: Path) -> Path:
    (backup,) = dest.iterdir()
    return backup


def test_backup_prints_where_and_records_itself_in_the_audit_chain(audited_workspace: Path, tmp_path: Path, capsys) -> None:
    assert main(["backup", str(tmp_path / "out"), "--workspace", str(audited_workspace)]) == 0
    backup = _only_backup(tmp_path / "out")
    assert str(backup) in capsys.readouterr().out
    last = _records(audited_workspace)[-1]
    assert (last["tool"], last["backup"], last["backup_seq"]) == ("backup", backup.name, 4)  # after init's acknowledgement and the fixture's four


def test_restore_into_a_clone_verifies_and_records_the_restore(audited_workspace: Path, tmp_path: Path, capsys) -> None:
    main(["backup", str(tmp_path / "out"), "--workspace", str(audited_workspace)])
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(audited_workspace), str(clone)], check=True)
    assert main(["restore", str(_only_backup(tmp_path / "out")), "--workspace", str(clone)]) == 0
    out = capsys.readouterr().out
    assert "audit chain intact" in out and "restored" in out
    assert [r.get("tool") for r in _records(clone)][-2:] == ["backup", "restore"] or [r.get("tool") for r in _records(clone)][-1] == "restore"
    assert main(["audit", "verify", "--workspace", str(clone)]) == 0


def test_restore_over_existing_state_exits_2_and_keeps_it(audited_workspace: Path, tmp_path: Path, capsys) -> None:
    main(["backup", str(tmp_path / "out"), "--workspace", str(audited_workspace)])
    before = load_settings(audited_workspace).audit_path.read_bytes()
    assert main(["restore", str(_only_backup(tmp_path / "out")), "--workspace", str(audited_workspace)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert load_settings(audited_workspace).audit_path.read_bytes() == before


def test_restore_of_a_directory_that_is_no_backup_exits_2(workspace: Path, tmp_path: Path, capsys) -> None:
    assert main(["restore", str(tmp_path), "--workspace", str(workspace)]) == 2
    assert "not an mlgate backup" in capsys.readouterr().err


@pytest.mark.parametrize(("done", "total", "bar"), [(0, 4, "[" + "." * 30 + "]"), (2, 4, "[" + "#" * 15 + "." * 15 + "]"), (4, 4, "[" + "#" * 30 + "]"), (0, 0, "[" + "#" * 30 + "]")])
def test_progress_line_fills_in_proportion(done: int, total: int, bar: str) -> None:
    assert progress_line(done, total, "mlflow.db").startswith(bar)
    assert progress_line(done, total, "mlflow.db").endswith(f"{done}/{total} mlflow.db")


def test_backup_to_a_file_exits_2_with_what_to_do_and_leaves_the_file_alone(audited_workspace: Path, tmp_path: Path, capsys) -> None:
    dest = tmp_path / "loans.csv"
    dest.write_text("a,b\n")
    assert main(["backup", str(dest), "--workspace", str(audited_workspace)]) == 2
    assert "what to do: give a directory" in capsys.readouterr().err
    assert dest.read_text() == "a,b\n" and _records(audited_workspace)[-1].get("tool") != "backup"


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_mistyped_workspace_exits_2_and_creates_no_state(audited_workspace: Path, tmp_path: Path, capsys, command: str) -> None:
    main(["backup", str(tmp_path / "out"), "--workspace", str(audited_workspace)])
    source = tmp_path / "out" if command == "backup" else _only_backup(tmp_path / "out")
    assert main([command, str(source), "--workspace", str(tmp_path / "typo")]) == 2
    assert "not an mlgate workspace" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_backup_under_a_file_exits_2_naming_the_path_instead_of_a_traceback(audited_workspace: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "loans.csv").write_text("a,b\n")
    assert main(["backup", str(tmp_path / "loans.csv" / "backups"), "--workspace", str(audited_workspace)]) == 2
    err = capsys.readouterr().err
    assert "Not a directory" in err and "loans.csv" in err and "what to do: check the paths given" in err
    assert _records(audited_workspace)[-1].get("tool") != "backup"
