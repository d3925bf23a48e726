"""server/backup.py on real state: a real audit chain, a real sqlite MLflow store with artifacts,
registry aliases, approvals and token records, copied out and restored into a new state dir."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from policies import Principal
from server.audit import AuditChain, verify
from server.backup import MANIFEST, STATE, check_backup, create_backup, read_info, relocate_artifacts, restore_backup, state_files
from server.ports import build_ports
from server.settings import load_settings
from tests.server.registry_helpers import MODEL, promoted
from tools.errors import IntegrityError, InvalidInput


@pytest.fixture
def populated(workspace: Path) -> dict:
    """A workspace state dir with audit records, two runs behind a `candidate` alias, a pending
    approval, a token record, scratch that must stay out, and an anchored chain."""
    settings = load_settings(workspace)
    ports = build_ports(settings)
    experiment = ports.tracking.get_or_create_experiment("demo-bank/credit-default")
    made = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    ports.approvals.request(change_hash="a" * 64, target="configs/experiment.yaml", diff=[], fields=[], requester=Principal("agent-1", "agent"), reasoning={}, now="2026-12-01T00:00:00Z")
    for n in range(3):
        ports.audit.append({"kind": "decision", "tool": "load_dataset", "n": n})
    ports.audit.close()
    (settings.state_dir / "runs" / "scratch").mkdir(parents=True)
    (settings.state_dir / "runs" / "scratch" / "big.bin").write_bytes(b"x" * 100)
    return {"settings": settings, "ports": ports, "runs": [run for run, _ in made]}


def _backup(populated: dict, tmp_path: Path) -> Path:
    settings = populated["settings"]
    return create_backup(settings.state_dir, tmp_path / "backups", "20261201T000000Z", workspace=settings.workspace).path


def test_backup_holds_the_record_and_leaves_scratch_out(populated: dict, tmp_path: Path) -> None:
    backup = _backup(populated, tmp_path)
    names = {p.as_posix() for p in state_files(backup / STATE)}
    assert {"audit.jsonl", "audit.head", "mlflow.db", "registry/aliases.json"} <= names
    assert any(n.startswith("approvals/apr-") for n in names)
    assert not any(n.startswith("runs/") or n.endswith(".lock") for n in names)
    assert backup.name == "mlgate-backup-20261201T000000Z"
    assert oct(backup.stat().st_mode & 0o777) == "0o700"


def test_backup_records_the_audit_head_it_holds(populated: dict, tmp_path: Path) -> None:
    info = read_info(_backup(populated, tmp_path))
    last = json.loads(populated["settings"].audit_path.read_bytes().splitlines()[-1])
    assert info["audit_head"] == {"seq": last["seq"], "hash": last["hash"]}


def test_backup_copies_only_complete_audit_records(populated: dict, tmp_path: Path) -> None:
    audit = populated["settings"].audit_path
    with audit.open("ab") as handle:
        handle.write(b'{"torn": ')
    backup = _backup(populated, tmp_path)
    assert (backup / STATE / "audit.jsonl").read_bytes().endswith(b"\n")
    assert verify(backup / STATE / "audit.jsonl").ok


def test_restore_into_a_new_state_dir_keeps_chain_runs_aliases_and_approvals(populated: dict, tmp_path: Path) -> None:
    backup = _backup(populated, tmp_path)
    target = tmp_path / "restored-state"
    restore_backup(backup, target)
    assert verify(target / "audit.jsonl").ok
    restored = build_ports(load_settings(populated["settings"].workspace, state_dir=str(target)))
    for run_id in populated["runs"]:
        run = restored.tracking.get_run(run_id)
        assert run["artifact_uri"].startswith(target.as_uri())
        assert restored.tracking.list_artifacts(run_id) == ["model/weights.json"]
    assert restored.registry.alias_version(MODEL, "candidate") == "2"
    assert restored.registry.stack(MODEL, "candidate") == ["1", "2"]
    assert [a["id"] for a in restored.approvals.list()] == [a["id"] for a in populated["ports"].approvals.list()]
    restored.audit.close()


def test_restore_refuses_a_state_dir_in_use_and_changes_nothing(populated: dict, tmp_path: Path) -> None:
    backup = _backup(populated, tmp_path)
    target = tmp_path / "in-use"
    target.mkdir()
    (target / "audit.jsonl").write_bytes(b"")
    with pytest.raises(InvalidInput, match="not empty"):
        restore_backup(backup, target)
    assert [p.name for p in target.iterdir()] == ["audit.jsonl"]


@pytest.mark.parametrize("damage", ["edit", "delete", "extra"])
def test_restore_refuses_an_altered_backup_and_writes_nothing(populated: dict, tmp_path: Path, damage: str) -> None:
    backup = _backup(populated, tmp_path)
    aliases = backup / STATE / "registry" / "aliases.json"
    if damage == "edit":
        aliases.write_text(aliases.read_text().replace('"2"', '"1"'))
    elif damage == "delete":
        aliases.unlink()
    else:
        (backup / STATE / "approvals" / "apr-000000000000.json").write_text("{}")
    target = tmp_path / "restored"
    with pytest.raises(IntegrityError):
        restore_backup(backup, target)
    assert not target.exists() and not any(p.name.startswith(".restored") for p in tmp_path.iterdir())


def test_a_manifest_naming_a_path_outside_the_backup_is_refused(populated: dict, tmp_path: Path) -> None:
    backup = _backup(populated, tmp_path)
    (backup / MANIFEST).write_text("../../etc/passwd\t1\t" + "0" * 64 + "\n")
    with pytest.raises(IntegrityError, match="outside the backup"):
        check_backup(backup)


def test_backup_refuses_a_directory_without_mlgate_state(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no mlgate state"):
        create_backup(tmp_path, tmp_path / "out", "x", workspace=tmp_path)


def test_relocation_rewrites_artifact_locations_only_below_the_old_state_dir(tmp_path: Path) -> None:
    database = tmp_path / "m.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE runs (run_uuid TEXT, artifact_uri TEXT, name TEXT)")
    old = tmp_path / "old"
    rows = [("a", f"{old.as_uri()}/mlartifacts/1", f"{old}/kept"), ("b", f"{old.as_uri()}-other/x", "n"), ("c", f"{old}/mlartifacts/2", "n")]
    connection.executemany("INSERT INTO runs VALUES (?, ?, ?)", rows)
    connection.commit()
    connection.close()
    assert relocate_artifacts(database, old, tmp_path / "new") == 2
    got = dict(sqlite3.connect(database).execute("SELECT run_uuid, artifact_uri FROM runs").fetchall())
    assert got == {"a": f"{(tmp_path / 'new').as_uri()}/mlartifacts/1", "b": f"{old.as_uri()}-other/x", "c": f"{tmp_path / 'new'}/mlartifacts/2"}
    assert sqlite3.connect(database).execute("SELECT name FROM runs WHERE run_uuid = 'a'").fetchone() == (f"{old}/kept",)


def test_the_directory_backups_were_made_in_is_refused_naming_the_newest_backup_in_it(populated: dict, tmp_path: Path) -> None:
    backup = _backup(populated, tmp_path)
    with pytest.raises(InvalidInput) as refused:
        read_info(backup.parent)
    assert refused.value.rule_id == "backup.not_a_backup"
    assert refused.value.remediation == f"it holds 1 backup(s): pass one of them, the newest is {backup}"
    with pytest.raises(InvalidInput) as elsewhere:
        read_info(tmp_path / "nothing-here")
    assert elsewhere.value.remediation.startswith("pass a directory made by `mlgate backup`")
