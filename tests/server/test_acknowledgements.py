"""The acknowledgement pin's inputs: which settings it covers, what the chain keeps of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.acknowledgements import AcknowledgementLedger, blob_id, file_config, flatten
from server.cli import main
from server.git import GitRepo
from server.ports import build_ports
from server.settings import GOVERNED_SETTINGS, UNGOVERNED_SETTINGS, Settings, load_settings
from tests.credentials import use_token


def test_every_setting_is_either_pinned_or_named_as_not_governing() -> None:
    assert sorted(GOVERNED_SETTINGS + UNGOVERNED_SETTINGS) == sorted(Settings.model_fields)


def test_the_chain_keeps_only_a_hash_of_a_tracking_uri_with_credentials(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    (settings.state_dir / "server.yaml").write_text("tracking_uri: http://bob:hunter2@mlflow.bank.example\n")
    assert file_config(workspace, settings.state_dir)["tracking_uri"].startswith("sha256:")
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert main(["standards", "accept", "--workspace", str(workspace), "--yes"]) == 0
    assert "hunter2" not in settings.audit_path.read_text()
    assert AcknowledgementLedger(settings.audit_path).latest()["via"] == "accept"


def test_the_launch_environment_and_overrides_are_not_pinned(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLGATE_SANDBOX_MODE", "unconfined")
    settings = load_settings(workspace, transport="memory", local_principal="alice", local_role="human")
    assert settings.sandbox_mode == "unconfined" and build_ports(settings).standards.policy_config()["acknowledgement"]["problem"] is None


def test_the_recorded_blob_id_is_the_one_git_names() -> None:
    assert blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_flatten_gives_dotted_leaves() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}, "e.f": None}) == {"a.b": 1, "a.c": [1, 2], "d": {}, "e.f": None}


def test_init_pins_its_first_record(workspace: Path, settings: Settings) -> None:
    record = json.loads(settings.audit_path.read_text().splitlines()[0])
    pin = json.loads((settings.state_dir / "standards_pin.json").read_text())
    assert pin == {k: record[k] for k in ("seq", "hash", "standards_sha256", "server_config_sha256")}
    assert record["standards_blob"] == GitRepo(workspace).text("rev-parse", "main:configs/project_standards.yaml") and record["commit"] == GitRepo(workspace).head()


def test_executor_and_tracking_blocks_at_their_defaults_leave_the_pin_of_an_older_workspace_valid(workspace: Path, settings: Settings) -> None:
    config = file_config(workspace, settings.state_dir)
    assert not [key for key in config if key.startswith(("executor", "tracking."))]
    (settings.state_dir / "server.yaml").write_text("executor:\n  backend: ray\n  ray:\n    address: 10.0.0.5:6379\n")
    changed = file_config(workspace, settings.state_dir)
    assert changed["executor.backend"] == "ray" and changed["executor.ray.address"].startswith("sha256:")
