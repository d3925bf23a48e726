"""`mlgate models list` and `mlgate rollback` as a human at a terminal: a real workspace, a real
sqlite MLflow registry, the same enforcement point and audit chain as MCP calls."""

from __future__ import annotations

import json
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
from tools.model_card import model_card

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


def test_models_list_shows_any_name_another_project_registered_escaped(settings: Settings, ports: Ports, experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A shared store holds names anyone registered: a quote must not break the listing, and a
    terminal escape is printed escaped, never acted on."""
    for name in ("other-bank's-model", 'quoted "both\' kinds', "evil\x1b[2J\x1b[31mRED"):
        ports.tracking.client.create_registered_model(name)
        ports.tracking.client.create_model_version(name, source=str(settings.state_dir))
    assert main(["models", "list", "--workspace", str(settings.workspace)]) == 0
    out = capsys.readouterr().out
    assert "other-bank's-model  (no aliases)" in out and "quoted \"both' kinds  (no aliases)" in out
    assert "\x1b" not in out and "evil\\x1b[2J\\x1b[31mRED" in out and out.count("    v1  ") == 3


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


def carded(ports: Ports, experiment: str, alias: str = "champion") -> str:
    """A promoted version whose run logged the card promote writes, sealed test figures included."""
    ((run_id, version),) = promoted(ports.registry, ports.tracking, experiment, alias, 1)
    run = {"run_id": run_id, "params": {"dataset_content_hash": "d" * 64, "git_commit": "c" * 40, "config.model.type": "xgboost"},
           "metrics": {"val_roc_auc": 0.79, "val_roc_auc_ci95_low": 0.74, "val_roc_auc_ci95_high": 0.83, "test_roc_auc": 0.8123}}
    report = {"data": {"test_rows": 600}, "split": {"test": {"rows": 600, "positives": 149}}}
    card = model_card({"model": MODEL, "version": version, "alias": alias, "run": run, "standards": {"label": {"target": "default", "positive_class": 1}},
                       "report": report, "receipt": [{"gate": "min_primary_metric", "status": "PASS", "observed": 0.8123, "reason": "observed 0.8123"}],
                       "approvals": [{"id": "apr-0123456789ab", "decided_by": "bob", "decided_at": "2026-01-02T00:00:00Z"}], "reproduction": {"reproduced": "true"},
                       "promoted_by": {"name": "carol", "role": "human"}, "promoted_at": "2026-01-02T00:00:01Z"})  # fmt: skip
    ports.tracking.log_json_artifact(run_id, "model_card.json", card)
    return run_id


def test_models_card_shows_a_human_the_sealed_figures_and_is_audited_as_a_read(settings: Settings, ports: Ports, experiment: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = carded(ports, experiment)
    assert main(["models", "card", MODEL, "--workspace", str(settings.workspace)]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL} v1 (champion; aliases: champion)  run {run_id}" in out
    assert "val_roc_auc    0.7900 (95% CI 0.7400-0.8300)" in out and "test_roc_auc   0.8123" in out
    assert "600 held-out rows holding 149 positive labels" in out and "apr-0123456789ab by bob" in out and "promoted by carol (human)" in out
    read = ports.audit.tail(1)[0]
    assert (read["kind"], read["resource"], read["principal"], read["transport"], read["status"]) == ("read", "mlgate://models/{name}/card", "carol", "cli", "ok")
    assert verify(settings.audit_path).ok


def test_models_card_without_a_token_is_the_card_an_agent_reads(settings: Settings, ports: Ports, experiment: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    carded(ports, experiment)
    monkeypatch.delenv(TOKEN_ENV)
    assert main(["models", "card", MODEL, "--workspace", str(settings.workspace), "--json"]) == 0
    out = capsys.readouterr().out
    assert "0.8123" not in out and json.loads(out)["card"]["metrics"]["validation"]["val_roc_auc"] == 0.79
    assert main(["models", "card", MODEL, "--workspace", str(settings.workspace)]) == 0
    assert "sealed test metrics: sealed (a human or operator token in MLGATE_TOKEN shows the figures)" in capsys.readouterr().out
    assert ports.audit.tail(1)[0]["role"] == "agent"


def test_models_card_of_another_model_or_before_any_promotion_names_the_terminal_commands(settings: Settings, ports: Ports, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "card", MODEL, "--workspace", str(settings.workspace)]) == 2
    err = capsys.readouterr().err
    assert "no champion or candidate version" in err and "`mlgate promote RUN --alias candidate`" in err and "promote(run_id" not in err
    assert main(["models", "card", "other-model", "--workspace", str(settings.workspace)]) == 2
    err = capsys.readouterr().err
    assert "not this project's model" in err and "`mlgate models list`" in err and "mlgate://" not in err
