"""A dataset's PII column written in another case or with stray spaces (`Email`, `SSN `) is the
standards' PII column everywhere, as load_dataset already masks it: never a feature of a run,
never let through by training.no_pii_features, and reported present, not absent."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from policies.training import no_pii_features, protected_attributes_excluded
from server.cas import StoredFile, read_frame
from server.cli import main
from server.settings import load_settings
from server.workspace import TEMPLATE_DIR
from tests.credentials import use_token
from tools.columns import column_report
from tools.experiment_schema import validate_experiment
from tools.load_dataset import masked_sample
from tools.run_features import select_features

STANDARDS = {"pii_columns": ["email", "ssn"], "label": {"target": "default"}, "protected_attributes": []}
CONFIG = {"data": {"target": "default"}, "features": {"exclude": [], "use_protected_attributes": False}}
CSV = b"Email,SSN ,income,email_domain,default\nann@example.com,123-45-6789,50,example.com,0\nbob@example.com,987-65-4321,60,example.com,1\n"


def _frame() -> object:
    return read_frame([StoredFile("customers.csv", len(CSV), hashlib.sha256(CSV).hexdigest(), CSV)])


def test_a_pii_column_in_another_case_or_with_spaces_is_masked_and_never_a_feature() -> None:
    frame = _frame()
    assert {row["Email"] for row in masked_sample(frame, STANDARDS["pii_columns"], 5)} == {"***"}
    features, _ = select_features(frame, CONFIG, STANDARDS)
    assert features == ["income", "email_domain"]  # a column merely containing a PII name stays a feature


def test_no_pii_features_denies_a_pii_column_in_another_case_and_allows_other_columns() -> None:
    config = {"standards": STANDARDS}
    denied = no_pii_features({"feature_columns": ["income", " EMAIL"]}, config)
    assert not denied.allowed and "EMAIL" in denied.reason
    assert no_pii_features({"feature_columns": ["income", "email_domain"]}, config).allowed


def test_the_column_report_finds_pii_columns_in_any_case_and_names_the_truly_absent() -> None:
    report = column_report(["Email", "income", "default"], STANDARDS)
    assert report["pii_columns"] == {"present": ["email"], "absent": ["ssn"]}
    assert report["warnings"] == ["PII columns named by the standards but absent from the dataset: ['ssn']"]


# --- look-alike names: full-width letters, zero-width characters, another case ----------------------

LOOK_ALIKES = ["ｅｍａｉｌ", "e\u200bmail", "EMAIL\ufeff", "Ｓｓｎ"]


def test_a_pii_column_spelled_with_full_width_or_zero_width_characters_is_pii() -> None:
    frame = _frame().rename(columns={"Email": LOOK_ALIKES[0], "SSN ": LOOK_ALIKES[1]})
    assert {row[LOOK_ALIKES[0]] for row in masked_sample(frame, STANDARDS["pii_columns"], 5)} == {"***"}
    features, _ = select_features(frame, CONFIG, STANDARDS)
    assert features == ["income", "email_domain"]
    denied = no_pii_features({"feature_columns": ["income", *LOOK_ALIKES]}, {"standards": STANDARDS})
    assert not denied.allowed and all(name in denied.reason for name in ("EMAIL", "Ｓｓｎ"))


def test_a_protected_attribute_in_another_case_or_look_alike_spelling_is_never_a_silent_feature() -> None:
    standards = {**STANDARDS, "protected_attributes": ["gender", "age"]}
    frame = _frame().assign(Gender=["f", "m"], age=[30, 40]).rename(columns={"Gender": "Ｇｅｎｄｅｒ"})
    features, _ = select_features(frame, CONFIG, standards)
    assert features == ["income", "email_domain"]
    facts = {"feature_columns": ["income", "GENDER"], "config": CONFIG}
    denied = protected_attributes_excluded(facts, {"standards": standards})
    assert not denied.allowed and "GENDER" in denied.reason
    assert protected_attributes_excluded({"feature_columns": ["income"], "config": CONFIG}, {"standards": standards}).allowed


# --- names that forge or hide text: refused by `mlgate data add`, one rule with features.exclude -----

FORGING_HEADERS = {
    "tab": b"income,default\t,grade\n1,0,A\n",
    "quoted_newline": b'income,"default\nmlgate: approved",grade\n1,0,A\n',
    "right_to_left_override": "income,\u202edefault,grade\n1,0,A\n".encode(),
}


def _data_add(workspace: Path, path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["data", "add", str(workspace), str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def operator_token(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The operator's token in MLGATE_TOKEN, as in the operator's own shell (issued before the test looks at the chain)."""
    return use_token(monkeypatch, load_settings(workspace).state_dir, "data-ops", "operator")


@pytest.mark.usefixtures("operator_token")
@pytest.mark.parametrize("header", FORGING_HEADERS.values(), ids=FORGING_HEADERS.keys())
def test_mlgate_data_add_refuses_a_header_that_forges_text_and_leaves_nothing_behind(
    workspace: Path, tmp_path: Path, header: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "forged.csv").write_bytes(header)
    chain = load_settings(workspace).audit_path
    before = chain.read_bytes() if chain.exists() else b""
    code, out, err = _data_add(workspace, tmp_path / "forged.csv", monkeypatch, capsys)
    assert code == 2 and out == "" and "column 2 of 3" in err and "rename the column in the file's header" in err
    assert err.isascii() and err.count("\n") == 2  # the refusal line and what to do: the name forged no line
    assert not (workspace / "data" / "shadow").exists() or not list((workspace / "data" / "shadow").iterdir())
    assert (chain.read_bytes() if chain.exists() else b"") == before
    assert main(["data", "list", "--workspace", str(workspace)]) == 0 and capsys.readouterr().out == ""


@pytest.mark.usefixtures("operator_token")
def test_mlgate_data_add_imports_a_zero_width_name_that_features_exclude_can_then_name(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wide.csv").write_text("income,de\u200bfault,ｄefault\n1,0,0\n", encoding="utf-8")
    code, out, _ = _data_add(workspace, tmp_path / "wide.csv", monkeypatch, capsys)
    assert code == 0 and (workspace / "data" / "shadow" / out.strip() / "wide.csv").is_file()
    columns = list(read_frame([StoredFile("wide.csv", 0, "", (tmp_path / "wide.csv").read_bytes())]).columns)
    raw = yaml.safe_load((TEMPLATE_DIR / "configs/experiment.yaml").read_text())
    raw["features"]["exclude"] = columns[1:]
    config, problems = validate_experiment(raw)
    assert problems == [] and list(config.features.exclude) == ["de\u200bfault", "ｄefault"]


def test_features_exclude_refuses_a_bidi_control_as_the_import_does() -> None:
    raw = yaml.safe_load((TEMPLATE_DIR / "configs/experiment.yaml").read_text())
    raw["features"]["exclude"] = ["income", "\u202edefault"]
    _, problems = validate_experiment(raw)
    assert len(problems) == 1 and "U+202E (a bidi control" in problems[0] and "mlgate data add" in problems[0]
