"""server/standards_set.py: the columns an operator names follow the import's column-name rule,
and the label so named fits `data.target` of experiment.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.cli import main
from server.git import GitRepo
from server.safe_yaml import load_document
from server.settings import Settings, policy_limits
from server.standards_set import StandardsChoice, check_choice, label_value
from tests.credentials import use_token
from tools.errors import InvalidInput
from tools.experiment_schema import EXPERIMENT_PATH, validate_experiment


@pytest.mark.parametrize("target", ["Default (12m)", "état", "ｌoan_status", "loan\u200bstatus"])
def test_a_label_any_imported_column_can_be_is_accepted(target: str) -> None:
    assert check_choice(StandardsChoice(target=target)).target == target


@pytest.mark.parametrize(
    ("choice", "says"),
    [
        (StandardsChoice(target="loan\u202estatus"), '"loan\\u202estatus" is not allowed: it holds U+202E'),
        (StandardsChoice(time_column="issue\td"), '"issue\\td" is not allowed: it holds U+0009'),
        (StandardsChoice(pii=("id", "")), '"" is not allowed: it is empty'),
        (StandardsChoice(protected=("x" * 257,)), "it has 257 characters"),
    ],
    ids=["bidi_target", "tab_time_column", "empty_pii", "over_long_protected"],
)
def test_a_column_the_import_would_refuse_is_refused_escaped(choice: StandardsChoice, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_choice(choice)
    assert says in refused.value.reason and refused.value.rule_id == "standards.set"
    assert all(ch.isprintable() for ch in refused.value.reason)


@pytest.mark.parametrize("target", ["Default (12m)", "état"])
def test_the_experiment_schema_takes_such_a_label_as_data_target(target: str, workspace: Path) -> None:
    document = load_document((workspace / EXPERIMENT_PATH).read_bytes(), policy_limits()["documents"])
    document["data"]["target"] = target
    config, problems = validate_experiment(document)
    assert problems == [] and config.data.target == target


def test_the_experiment_schema_refuses_a_label_no_dataset_column_can_have(workspace: Path) -> None:
    document = load_document((workspace / EXPERIMENT_PATH).read_bytes(), policy_limits()["documents"])
    document["data"]["target"] = "loan\u2028status"
    config, problems = validate_experiment(document)
    assert config is None and any("data.target" in p and "U+2028" in p for p in problems), problems


def test_standards_set_with_a_label_outside_ascii_commits_a_valid_experiment(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert main(["standards", "set", "--workspace", str(workspace), "--yes", "--target", "Default (12m)"]) == 0
    committed = load_document(GitRepo(workspace).show("main", EXPERIMENT_PATH) or b"", policy_limits()["documents"])
    config, problems = validate_experiment(committed)
    assert problems == [] and config.data.target == "Default (12m)"


@pytest.mark.parametrize("positive", ["Yes", "on", "NO", "Off", "0777"])
def test_standards_set_with_a_positive_class_yaml_1_1_reads_otherwise_commits_it_quoted(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, positive: str) -> None:
    # ruamel.yaml writes YAML 1.2, where `Yes` is a plain string; mlgate's reader refuses it as a YAML 1.1 boolean.
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert main(["standards", "set", "--workspace", str(workspace), "--yes", "--target", "defaulted", "--positive-class", positive]) == 0
    for path in (EXPERIMENT_PATH, "configs/project_standards.yaml"):
        committed = load_document(GitRepo(workspace).show("main", path) or b"", policy_limits()["documents"])
        label = committed["data"] if path == EXPERIMENT_PATH else committed["label"]
        assert label["positive_class"] == positive


@pytest.mark.parametrize(("typed", "value"), [("1", 1), ("0", 0), ("-1", -1), ("0777", "0777"), ("-0", "-0"), ("Charged Off", "Charged Off")])
def test_a_positive_class_is_an_integer_only_in_its_canonical_form(typed: str, value: int | str) -> None:
    # A code with a leading zero is compared as text with the label's values: 777 would never equal "0777".
    assert label_value(typed) == value and type(label_value(typed)) is type(value)
