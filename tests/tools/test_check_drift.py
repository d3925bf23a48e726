"""check_drift through a real in-memory MCP client: a real workspace, imported datasets, a run in
the project's sqlite MLflow experiment carrying the drift baseline of its training rows, and the
registry alias pointing at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from server.commands.data import import_files
from server.demo_data import credit_frame
from server.ports import Ports
from server.settings import Settings
from tests.mcp_calls import call_tool
from tools.check_drift import drift_report, psi_threshold
from tools.name_families import MAX_LISTED
from tools.drift import drift_baseline
from tools.promote import model_name

pytestmark = pytest.mark.anyio
FEATURES = ["income", "debt_ratio", "credit_history_months", "employment_type"]


def _import(workspace: Path, tmp_path: Path, frame: pd.DataFrame, name: str) -> str:
    source = tmp_path / f"{name}.csv"
    frame.to_csv(source, index=False)
    return import_files(workspace, [source]).added.content_hash


@pytest.fixture
def lab(workspace: Path, tmp_path: Path, ports: Ports) -> dict[str, Any]:
    training = credit_frame(rows=400, seed=11)
    shifted = credit_frame(rows=400, seed=12)
    shifted["income"] = shifted["income"] * 3
    shifted["employment_type"] = "contractor"
    standards = ports.standards.policy_config()["standards"]
    experiment = ports.tracking.get_or_create_experiment(f"{standards['client_name']}/{standards['project_name']}")
    run_id = ports.tracking.start_run(experiment, {"client_name": standards["client_name"]})
    ports.tracking.log_json_artifact(run_id, "drift_baseline.json", drift_baseline(training[FEATURES]))
    ports.tracking.end_run(run_id, "FINISHED")
    return {
        "run_id": run_id,
        "standards": standards,
        "same": _import(workspace, tmp_path, credit_frame(rows=400, seed=13), "same"),
        "shifted": _import(workspace, tmp_path, shifted, "shifted"),
        "no_income": _import(workspace, tmp_path, credit_frame(rows=400, seed=14).drop(columns=["income"]), "no-income"),
    }


async def _call(settings: Settings, ports: Ports, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    return await call_tool(settings, "check_drift", arguments, ports)


async def test_data_like_the_training_rows_shows_no_drift(settings: Settings, ports: Ports, lab: dict) -> None:
    is_error, payload = await _call(settings, ports, {"run_id": lab["run_id"], "content_hash": lab["same"]})
    assert not is_error, payload
    assert payload["drifted"] is False and payload["flagged"] == []
    assert set(payload["psi"]) == set(FEATURES) and max(payload["psi"].values()) < 0.1
    assert payload["threshold"] == 0.2 and payload["rows"] == 400


async def test_shifted_features_are_flagged_worst_first(settings: Settings, ports: Ports, lab: dict) -> None:
    _, payload = await _call(settings, ports, {"run_id": lab["run_id"], "content_hash": lab["shifted"]})
    assert payload["drifted"] is True
    assert set(payload["flagged"]) == {"income", "employment_type"}
    assert [payload["psi"][f] for f in payload["flagged"]] == sorted((payload["psi"][f] for f in payload["flagged"]), reverse=True)
    assert "debt_ratio" not in payload["flagged"]


async def test_a_feature_the_new_data_lacks_is_listed_not_dropped(settings: Settings, ports: Ports, lab: dict) -> None:
    _, payload = await _call(settings, ports, {"run_id": lab["run_id"], "content_hash": lab["no_income"]})
    assert payload["missing_features"] == ["income"] and "income" not in payload["psi"]


async def test_the_alias_names_the_model_version_whose_run_is_the_baseline(settings: Settings, ports: Ports, lab: dict) -> None:
    name = model_name(lab["standards"])
    version = ports.registry.register(name, lab["run_id"], ports.tracking.get_run(lab["run_id"])["artifact_uri"], {})
    ports.registry.point(name, "candidate", version, {"run_id": lab["run_id"], "by": "alice", "at": "2026-12-01T00:00:00Z"})
    is_error, payload = await _call(settings, ports, {"alias": "candidate", "content_hash": lab["shifted"]})
    assert not is_error, payload
    assert (payload["run_id"], payload["model_version"], payload["alias"]) == (lab["run_id"], version, "candidate")


async def test_an_alias_pointing_nowhere_is_a_clear_denial(settings: Settings, ports: Ports, lab: dict) -> None:
    is_error, payload = await _call(settings, ports, {"alias": "champion", "content_hash": lab["same"]})
    assert is_error and payload["rule_id"] == "drift.no_alias" and "promote" in payload["remediation"]


async def test_naming_both_or_neither_target_is_invalid_input(settings: Settings, ports: Ports, lab: dict) -> None:
    for arguments in ({"run_id": lab["run_id"], "alias": "candidate", "content_hash": lab["same"]}, {"content_hash": lab["same"]}):
        is_error, payload = await _call(settings, ports, arguments)
        assert is_error and payload["rule_id"] == "input.schema" and "exactly one" in payload["reason"]


async def test_an_unknown_dataset_is_refused(settings: Settings, ports: Ports, lab: dict) -> None:
    is_error, payload = await _call(settings, ports, {"run_id": lab["run_id"], "content_hash": "0" * 64})
    assert is_error and payload["decision"] == "deny" and payload["rule_id"].startswith("data.")


async def test_a_run_without_a_baseline_is_not_found(settings: Settings, ports: Ports, lab: dict) -> None:
    experiment = ports.tracking.find_experiment(f"{lab['standards']['client_name']}/{lab['standards']['project_name']}")
    bare = ports.tracking.start_run(experiment, {})
    is_error, payload = await _call(settings, ports, {"run_id": bare, "content_hash": lab["same"]})
    assert is_error and payload["rule_id"] == "drift.no_baseline"


async def test_a_run_of_another_project_is_not_found(settings: Settings, ports: Ports, lab: dict) -> None:
    other = ports.tracking.start_run(ports.tracking.get_or_create_experiment("other-bank/other-project"), {})
    is_error, payload = await _call(settings, ports, {"run_id": other, "content_hash": lab["same"]})
    assert is_error and payload["rule_id"] == "runs.same_project"


async def test_every_check_is_audited_with_the_run_and_dataset(settings: Settings, ports: Ports, lab: dict) -> None:
    await _call(settings, ports, {"run_id": lab["run_id"], "content_hash": lab["shifted"]})
    ports.audit.sync()
    records = [json.loads(line) for line in settings.audit_path.read_bytes().splitlines()]
    outcome = [r for r in records if r.get("tool") == "check_drift" and r.get("kind") == "outcome"][-1]
    assert (outcome["status"], outcome["run_id"], outcome["content_hash"]) == ("ok", lab["run_id"], lab["shifted"])


def test_the_standards_threshold_wins_over_the_server_default() -> None:
    assert psi_threshold({"standards": {"drift": {"psi_threshold": 0.1}}, "policy": {"drift": {"psi_threshold": 0.3}}}) == 0.1
    assert psi_threshold({"standards": {}, "policy": {"drift": {"psi_threshold": 0.3}}}) == 0.3


def test_a_feature_exactly_at_the_threshold_is_not_flagged() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10})
    report = drift_report(drift_baseline(frame), frame, threshold=0.0)
    assert report["psi"]["x"] == 0.0 and report["flagged"] == []


def test_cli_twin_exits_1_and_lists_drifted_features_first(workspace: Path, lab: dict, capsys) -> None:
    from server.cli import main  # noqa: PLC0415

    assert main(["drift", "--workspace", str(workspace), "--run", lab["run_id"], "--dataset", lab["shifted"]]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:2]] == ["DRIFT", "DRIFT"] and {lines[0].split()[-1], lines[1].split()[-1]} == {"income", "employment_type"}
    assert lines[-1].endswith("2 of 4 features above PSI 0.2")


def test_cli_twin_exits_0_when_nothing_drifted(workspace: Path, lab: dict, capsys) -> None:
    from server.cli import main  # noqa: PLC0415

    assert main(["drift", "--workspace", str(workspace), "--run", lab["run_id"], "--dataset", lab["same"]]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("no feature above PSI 0.2")


def test_past_the_listing_limit_the_highest_psi_are_listed_and_the_rest_bounded() -> None:
    from server.commands.drift import report_lines  # noqa: PLC0415

    names = [f"attr_{i:04d}" for i in range(MAX_LISTED + 40)]
    baseline = drift_baseline(pd.DataFrame({n: np.arange(100.0) for n in names}))
    shifted = pd.DataFrame({n: np.arange(100.0) + (60 if i % 50 == 0 else 0) for i, n in enumerate(names)})
    report = drift_report(baseline, shifted, 0.2)
    assert len(report["psi"]) == MAX_LISTED and report["features"] == len(names) and report["flagged"] == names[::50]
    assert report["psi_omitted"] == {"features": 40, "highest": 0.0} and list(report["psi"])[:5] == names[::50]
    lines = report_lines({**report, "run_id": "r" * 32, "threshold": 0.2})
    assert lines[-1] == f"run {'r' * 32}: 5 of {len(names)} features above PSI 0.2" and "40 more features, each at most PSI 0.0000" in lines[-2]
