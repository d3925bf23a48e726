"""run_experiment on generated messy lending data, end to end (real workspace rendered from the
template with the lending standards, real CAS import, real bwrap children, real sqlite MLflow).

What an agent sees before training (dry runs: missing columns, realised split fractions, label
proxies) and after (the leakage flag, binned fairness slices, the split really made), and that a
flagged run never becomes the best prior run nor is promoted."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from server.app import build_server
from server.commands.data import import_files
from server.git import GitRepo
from server.ports import build_ports
from server.settings import load_settings
from server.workspace import TEMPLATE_DIR, init_workspace
from tests.messy_data import BAD_STATUSES, LEAK_COLUMNS, STANDARDS, write_lending_csv

pytestmark = pytest.mark.anyio
REASONING = {"hypothesis_category": "baseline", "change_description": "Logistic baseline on the lending book.", "expected_effect": "A reference roc_auc for later changes."}
HONEST = {"features.exclude": list(LEAK_COLUMNS)}
LENDING_STANDARDS = {
    **STANDARDS,
    "leakage": {"forbidden_columns": ["recoveries"]},
    "fairness": {"min_slice_size": 15, "bins": {"age": [30, 45, 60]}},
}


def _lending_template(root: Path, extra: dict[str, Any]) -> Path:
    """The workspace template with the lending standards: what an operator's onboarding writes."""
    template = root / "template"
    shutil.copytree(TEMPLATE_DIR, template)
    path = template / "configs/project_standards.yaml.jinja"
    standards = yaml.safe_load(path.read_text().replace("{{ client_name }}", "demo-bank").replace("{{ project_name }}", "lending"))
    standards.update({**LENDING_STANDARDS, **extra})
    standards["protected_fields"].update({"data.target": "loan_status", "data.positive_class": list(BAD_STATUSES)})
    text = yaml.safe_dump(standards, sort_keys=False).replace("demo-bank", "{{ client_name }}").replace("client_name: lending", "client_name: demo-bank")
    path.write_text(text.replace("project_name: lending", 'project_name: "{{ project_name }}"').replace("client_name: '{{ client_name }}'", 'client_name: "{{ client_name }}"'))
    return template


def _configure(workspace: Path, content_hash: str, lending: bool) -> None:
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = content_hash
    if lending:
        document["data"].update(target="loan_status", positive_class=list(BAD_STATUSES))
    document["model"] = {"type": "logistic_regression", "params": {}}
    document["evaluation"]["bootstrap_samples"] = 20
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    GitRepo(workspace).commit_all("onboard the lending book")


def _lab(root: Path, months: int = 24, *, standards: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    template = _lending_template(root, extra or {}) if standards else TEMPLATE_DIR
    workspace = init_workspace(root / "ws", "demo-bank", "lending", template_dir=template)
    content_hash = import_files(workspace, [write_lending_csv(root / "lending.csv", rows=400, leaks=True, months=months)]).added.content_hash
    _configure(workspace, content_hash, standards)
    settings = load_settings(workspace, transport="memory")
    return {"workspace": workspace, "settings": settings, "ports": build_ports(settings)}


async def call(lab: dict[str, Any], tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    async with Client(build_server(lab["settings"], lab["ports"])) as client:
        result = await client.call_tool(tool, arguments)
    return result.is_error, result.structured_content


def _runs(lab: dict[str, Any]) -> list[dict[str, Any]]:
    tracking = lab["ports"].tracking
    return tracking.search_runs([tracking.get_or_create_experiment("demo-bank/lending")])


async def test_a_label_missing_from_the_dataset_is_denied_before_training_with_a_remediation(tmp_path: Path) -> None:
    # The template's demo standards (label `default`, time column application_date) on the lending book.
    lab = _lab(tmp_path, standards=False)
    for dry_run in (True, False):
        is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "dry_run": dry_run})
        assert is_error and content["rule_id"] != "server.internal"
        denied = {d["rule_id"] for d in content.get("denials", [content])}
        assert "data.columns_present" in denied, content
    assert "label column 'default'" in str(content) and "mlgate standards set" in str(content)
    assert _runs(lab) == []


async def test_a_dry_run_shows_columns_split_fractions_and_label_proxies_before_training(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    is_error, denied = await call(lab, "run_experiment", {"reasoning": REASONING, "dry_run": True})
    assert is_error and denied["rule_id"] == "leakage.forbidden_columns" and "recoveries" in denied["reason"]
    is_error, preview = await call(lab, "run_experiment", {"reasoning": REASONING, "dry_run": True, "config": {"features.exclude": ["recoveries"]}})
    assert not is_error, preview
    assert preview["columns"]["protected_attributes"] == {"present": ["age", "gender"], "absent": []}
    assert preview["split"]["expected"] == {"test": 0.2} and abs(preview["split"]["fractions"]["test"] - 0.2) <= 0.05
    assert set(preview["leakage"]["suspicious_columns"]) == {"int_rate_final", "status_note"}
    assert preview["leakage"]["checked_on"]["part"] == "training folds only"


async def test_label_proxies_are_denied_before_training_when_the_standards_say_deny(tmp_path: Path) -> None:
    lab = _lab(tmp_path, extra={"leakage": {"forbidden_columns": ["recoveries"], "action": "deny"}})
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": {"features.exclude": ["recoveries"]}})
    assert is_error and content["rule_id"] == "leakage.single_feature_proxy"
    assert "int_rate_final" in content["reason"] and "status_note" in content["reason"] and "features.exclude" in content["remediation"]
    assert _runs(lab) == []


async def test_coarse_months_that_move_the_test_window_are_denied_before_training(tmp_path: Path) -> None:
    lab = _lab(tmp_path, months=12)
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": HONEST})
    assert is_error and content["rule_id"] == "split.realised_fractions" and "test 0.1" in content["reason"]
    assert _runs(lab) == []


async def test_a_flagged_run_is_reported_never_the_best_prior_run_and_never_promoted(tmp_path: Path) -> None:
    lab = _lab(tmp_path)
    is_error, flagged = await call(lab, "run_experiment", {"reasoning": REASONING, "config": {"features.exclude": ["recoveries"]}})
    assert not is_error, flagged
    assert flagged["leakage"]["flagged"] is True and set(flagged["leakage"]["suspicious_columns"]) == {"int_rate_final", "status_note"}
    assert {g["gate"]: g["status"] for g in flagged["gate_receipt"]["gates"]}["leakage"] == "FAIL" and flagged["gate_receipt"]["passed"] is False
    assert lab["ports"].tracking.get_run(flagged["run_id"])["tags"]["mlgate.leakage"] == "flagged"

    is_error, honest = await call(lab, "run_experiment", {"reasoning": REASONING, "config": HONEST})
    assert not is_error, honest
    assert honest["leakage"]["flagged"] is False and honest["best_prior_run_id"] is None
    split = honest["split"]
    assert split["within_tolerance"] is True and set(split["fractions"]) == {"train", "validation", "test"}
    logged = lab["ports"].tracking.get_run(honest["run_id"])["metrics"]
    assert logged["split_test_fraction"] == pytest.approx(split["fractions"]["test"])

    age = honest["fairness"]["age"]
    assert age["bins"] == [30.0, 45.0, 60.0] and set(age["slices"]) <= {"< 30", "[30, 45)", "[45, 60)", ">= 60", "<missing>"}
    assert age["slices"]["<missing>"]["status"] == "insufficient" and "selection_rate" not in age["slices"]["<missing>"]
    assert honest["fairness"]["gender"]["slices"]["X"]["status"] == "insufficient"
    is_error, shown = await call(lab, "get_run", {"run_id": honest["run_id"]})
    assert not is_error and shown["fairness"] == honest["fairness"] and shown["leakage"]["flagged"] is False

    is_error, refused = await call(lab, "promote", {"run_id": flagged["run_id"], "alias": "candidate", "dry_run": True})
    assert is_error and "leakage.not_flagged" in {d["rule_id"] for d in refused.get("denials", [refused])}
