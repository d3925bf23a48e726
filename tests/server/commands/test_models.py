"""`mlgate models list` and `mlgate rollback` as a human at a terminal: a real workspace, a real
sqlite MLflow registry, the same enforcement point and audit chain as MCP calls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.audit import verify
from server.cli import main
from server.credentials import TOKEN_ENV
from server.ports import Ports, build_ports
from server.settings import Settings
from tests.credentials import use_token
from tests.server.registry_helpers import MODEL, promoted

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ports(settings: Settings) -> Ports:
    return build_ports(settings)


@pytest.fixture(autouse=True)
def carol_token(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """carol's human token in MLGATE_TOKEN, as in her own shell."""
    return use_token(monkeypatch, settings.state_dir, "carol")


@pytest.fixture
def experiment(ports: Ports) -> str:
    return ports.tracking.get_or_create_experiment("demo-bank/credit-default")


def test_rollback_command_restores_the_previous_champion_and_is_audited(settings: Settings, ports: Ports, experiment: str, carol_token: str, capsys: pytest.CaptureFixture[str]) -> None:
    (first, v1), (_, v2) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    assert main(["rollback", MODEL, "--workspace", str(settings.workspace), "--note", "shadow scores drifted"]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL}@champion: v{v2} -> v{v1} (run {first}) by carol" in out and f"stages: v{v2} champion -> archived, v{v1} archived -> champion" in out
    assert ports.registry.alias_version(MODEL, "champion") == v1
    outcome = [r for r in ports.audit.tail(5) if r.get("tool") == "rollback_alias"][-1]
    assert (outcome["principal"], outcome["role"], outcome["transport"], outcome["status"], outcome["run_id"]) == ("carol", "human", "cli", "ok", first)
    assert outcome["credential"].startswith("carol:") and carol_token not in settings.audit_path.read_text()
    assert verify(settings.audit_path).ok


def test_rollback_command_of_the_candidate_alias(settings: Settings, ports: Ports, experiment: str) -> None:
    (_, v1), _ = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    promoted(ports.registry, ports.tracking, experiment, "champion", 1)
    assert main(["rollback", MODEL, "--alias", "candidate", "--workspace", str(settings.workspace)]) == 0
    assert ports.registry.alias_version(MODEL, "candidate") == v1 and ports.registry.alias_version(MODEL, "champion") == "3"


def test_rollback_command_without_a_previous_version_explains_and_changes_nothing(settings: Settings, ports: Ports, experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    (_, v1), = promoted(ports.registry, ports.tracking, experiment, "champion", 1)
    assert main(["rollback", MODEL, "--workspace", str(settings.workspace)]) == 2
    err = capsys.readouterr().err
    assert "no previous version" in err and "what to do:" in err
    assert ports.registry.alias_version(MODEL, "champion") == v1


def test_rollback_command_refuses_a_hostile_model_name(settings: Settings, ports: Ports, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "x' or name='y", "--workspace", str(settings.workspace)]) == 2
    assert "model" in capsys.readouterr().err


def test_rollback_command_without_a_token_is_refused(settings: Settings, ports: Ports, experiment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _, (_, v2) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    monkeypatch.delenv(TOKEN_ENV)
    assert main(["rollback", MODEL, "--workspace", str(settings.workspace)]) == 2
    assert "MLGATE_TOKEN" in capsys.readouterr().err and ports.registry.alias_version(MODEL, "champion") == v2


def test_models_list_shows_aliases_and_versions(settings: Settings, ports: Ports, experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--workspace", str(settings.workspace)]) == 0
    assert "no registered models" in capsys.readouterr().out
    (first, _), (second, _) = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    assert main(["models", "list", "--workspace", str(settings.workspace)]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL}  (champion -> v2)" in out and f"v1  archived   run {first}" in out and f"v2  champion   run {second}" in out


def test_models_archive_command_retires_a_candidate_and_is_audited(settings: Settings, ports: Ports, experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    (first, v1), _ = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    assert main(["models", "archive", MODEL, v1, "--workspace", str(settings.workspace), "--note", "superseded"]) == 0
    assert f"{MODEL} v{v1}: archived (run {first}) by carol" in capsys.readouterr().out
    assert main(["models", "list", "--workspace", str(settings.workspace)]) == 0
    assert f"v{v1}  archived   run {first}" in capsys.readouterr().out
    outcome = [r for r in ports.audit.tail(5) if r.get("tool") == "archive_version"][-1]
    assert (outcome["principal"], outcome["transport"], outcome["lifecycle"]) == ("carol", "cli", f"v{v1}:candidate->archived")
    assert main(["models", "archive", MODEL, v1, "--workspace", str(settings.workspace)]) == 2
    assert "cannot become archived" in capsys.readouterr().err


def test_models_archive_command_without_a_token_is_refused(settings: Settings, ports: Ports, experiment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (_, v1), _ = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    monkeypatch.delenv(TOKEN_ENV)
    assert main(["models", "archive", MODEL, v1, "--workspace", str(settings.workspace)]) == 2
    assert "MLGATE_TOKEN" in capsys.readouterr().err and ports.registry.stage(MODEL, v1) == "candidate"


@pytest.mark.parametrize("command", [["models", "list"], ["rollback", MODEL], ["promote", "0" * 32]])
def test_a_mistyped_workspace_exits_2_and_creates_no_tracking_store(tmp_path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    assert main([*command, "--workspace", str(tmp_path / "typo")]) == 2
    captured = capsys.readouterr()
    assert "no registered models" not in captured.out and "not an mlgate workspace" in captured.err
    assert not (tmp_path / "typo").exists()


def test_the_first_use_of_a_new_store_prints_nothing_but_the_answer(workspace) -> None:
    """MLflow announced 'Creating initial MLflow database tables...' at INFO on an operator's terminal."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "server.cli", "models", "list", "--workspace", str(workspace)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "no registered models"
    assert done.stderr == "", done.stderr


def test_promoting_an_unknown_run_at_the_terminal_says_where_run_ids_are_found(settings: Settings, ports: Ports, carol_token: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["promote", "0" * 32, "--dry-run", "--workspace", str(settings.workspace)]) == 2
    err = capsys.readouterr().err
    assert f"no run {'0' * 32}" in err and "list runs" not in err
    assert "`mlgate ui`" in err and "`mlgate audit search --tool run_experiment`" in err


def test_rolling_back_an_alias_never_set_says_it_is_not_set(settings: Settings, ports: Ports, carol_token: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", MODEL, "--workspace", str(settings.workspace)]) == 2
    err = capsys.readouterr().err
    assert f"{MODEL}@champion is not set" in err and "None" not in err
    assert "`mlgate promote RUN --alias champion`" in err


def test_drift_against_an_alias_never_set_names_the_terminal_flag_for_a_run(settings: Settings, ports: Ports, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "--dataset", "a" * 64, "--alias", "champion", "--workspace", str(settings.workspace)]) == 2
    err = capsys.readouterr().err
    assert "has no champion alias" in err and "pass run_id" not in err
    assert "--run RUN_ID" in err and "`mlgate promote RUN --alias ALIAS`" in err
