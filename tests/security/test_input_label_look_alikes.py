"""An imported dataset that carries the label again under a look-alike spelling (`Loan_Status`,
`loan_status `, `ｌｏａｎ_ｓｔａｔｕｓ` beside `loan_status`), or the time column only under one
(`Issue_D` for `issue_d`), through a real MCP client, real import, real sandboxed training.

A run reads the label and the time column by their exact names, so such a column used to be a
plain feature: the label's copy trained the model (a perfect leak) and a look-alike time column
let a random split through on time-ordered data. Now the run is denied before training with the
column named, and a copy the operator keeps is never a feature even when features.exclude names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.commands.data import import_files
from server.ports import build_ports
from server.safe_yaml import load_document
from server.settings import load_settings, policy_limits
from server.workspace import init_workspace
from tests.messy_data import lending_frame
from tests.tools.test_run_experiment_messy import HONEST, REASONING, _configure, _lending_template, _runs, call

pytestmark = pytest.mark.anyio
KFOLD = {"strategy": "stratified_kfold", "n_splits": 3, "test_size": 0.2}


def _lab(root: Path, frame: Any) -> dict[str, Any]:
    workspace = init_workspace(root / "ws", "demo-bank", "lending", template_dir=_lending_template(root, {}))
    csv = root / "lending.csv"
    frame.to_csv(csv, index=False)
    _configure(workspace, import_files(workspace, [csv]).added.content_hash, True)
    settings = load_settings(workspace, transport="memory")
    return {"workspace": workspace, "settings": settings, "ports": build_ports(settings)}


def _denied(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{rule_id: denial} of a refused call; empty for a result."""
    return {d["rule_id"]: d for d in content.get("denials", [content]) if "rule_id" in d}


@pytest.mark.parametrize("spelling", ["loan_status ", "ｌｏａｎ_ｓｔａｔｕｓ", "loan\u200b_status"])
async def test_a_copy_of_the_label_in_another_spelling_is_denied_before_training(tmp_path: Path, spelling: str) -> None:
    frame = lending_frame(400, months=24)
    lab = _lab(tmp_path, frame.assign(**{spelling: frame["loan_status"]}))
    for dry_run in (True, False):
        is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": HONEST, "dry_run": dry_run})
        denial = _denied(content).get("data.no_label_or_time_look_alike")
        assert is_error and denial, content
        assert repr(spelling) in denial["reason"] and "drop or rename" in denial["remediation"] and "mlgate data add" in denial["remediation"]
    assert _runs(lab) == []


async def test_a_copy_of_the_label_is_denied_until_features_exclude_names_it_then_the_run_trains_without_it(tmp_path: Path) -> None:
    frame = lending_frame(400, months=24)
    lab = _lab(tmp_path, frame.assign(Loan_Status=frame["loan_status"]))
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": HONEST})
    assert is_error and "'Loan_Status' beside the label column 'loan_status'" in _denied(content)["data.no_label_or_time_look_alike"]["reason"], content
    assert _runs(lab) == []
    # The operator's answer "it is other data, not a feature": the run trains, without the copy.
    is_error, run = await call(lab, "run_experiment", {"reasoning": REASONING, "config": {"features.exclude": [*HONEST["features.exclude"], "Loan_Status"]}})
    assert not is_error, run
    features = json.loads(lab["ports"].tracking.get_run(run["run_id"])["params"]["feature_columns"])
    assert "Loan_Status" not in features and "loan_status" not in features and "income" in features
    assert run["leakage"]["flagged"] is False  # the copy, a perfect proxy, was not trained on


async def test_a_time_column_only_in_a_look_alike_spelling_does_not_let_a_random_split_through(tmp_path: Path) -> None:
    lab = _lab(tmp_path, lending_frame(400, months=24).rename(columns={"issue_d": "Issue_D"}))
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": {**HONEST, "split": KFOLD}})
    denial = _denied(content).get("training.temporal_split_when_time")
    assert is_error and denial, content
    assert "'Issue_D'" in denial["reason"] and "rename" in denial["remediation"] and "mlgate standards set" in denial["remediation"]
    # Under the temporal split the time column is missing, and the denial names the look-alike.
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": HONEST, "dry_run": True})
    denial = _denied(content).get("data.columns_present")
    assert is_error and denial and "'Issue_D'" in denial["reason"] and "rename" in denial["remediation"], content
    assert _runs(lab) == []


COPIES = ("ｌoan_status", "loan_\u200bstatus")  # one letter full-width; a zero-width space inside


async def test_full_width_and_zero_width_copies_of_the_label_named_in_features_exclude_train_without_them(tmp_path: Path) -> None:
    frame = lending_frame(400, months=24)
    lab = _lab(tmp_path, frame.assign(**{copy: frame["loan_status"] for copy in COPIES}))
    # An entry names one column exactly as spelled: the other copy still denies the run.
    one = {"features.exclude": [*HONEST["features.exclude"], COPIES[0]]}
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": one, "dry_run": True})
    denial = _denied(content).get("data.no_label_or_time_look_alike")
    assert is_error and denial and repr(COPIES[1]) in denial["reason"] and repr(COPIES[0]) not in denial["reason"], content
    assert '["loan_\\u200bstatus"]' in denial["remediation"]  # the spelling to name, typeable
    # Both named through propose_config_change: configs/experiment.yaml holds them exactly as spelled.
    exclude = [*HONEST["features.exclude"], *COPIES]
    is_error, proposed = await call(lab, "propose_config_change", {"changes": {"features.exclude": exclude}, "reasoning": REASONING})
    assert not is_error and proposed["decision"] == "allow", proposed
    written = load_document((lab["workspace"] / "configs/experiment.yaml").read_bytes(), policy_limits()["documents"])
    assert written["features"]["exclude"] == exclude
    is_error, run = await call(lab, "run_experiment", {"reasoning": REASONING})
    assert not is_error, run
    features = json.loads(lab["ports"].tracking.get_run(run["run_id"])["params"]["feature_columns"])
    assert not set(COPIES) & set(features) and "loan_status" not in features and "income" in features
    assert run["leakage"]["flagged"] is False  # neither copy, each a perfect proxy, was trained on


@pytest.mark.parametrize(("name", "says"), [("loan_status\t", "U+0009"), ("x" * 257, "257 characters")], ids=["control_character", "over_long"])
async def test_a_features_exclude_name_no_column_may_be_excluded_by_is_refused_with_what_to_do(tmp_path: Path, name: str, says: str) -> None:
    frame = lending_frame(400, months=24)
    lab = _lab(tmp_path, frame)  # no such column: the import refuses a name with a control character (policies/column_names.py)
    is_error, content = await call(lab, "run_experiment", {"reasoning": REASONING, "config": {"features.exclude": [*HONEST["features.exclude"], name]}})
    assert is_error and content["rule_id"] == "config.schema_valid", content
    assert says in content["reason"] and "exact name as the dataset spells it" in content["reason"] and "mlgate data add" in content["reason"]
    assert _runs(lab) == []
