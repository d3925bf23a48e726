"""`mlgate data add|list|verify` in-process through server.cli.main, and once as a real process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main
from server.credentials import TOKEN_ENV
from server.demo_data import write_credit_csv
from server.settings import load_settings
from tests.credentials import issue, use_token
from tests.server.cas_helpers import snapshot, writable

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    return write_credit_csv(tmp_path / "credit.csv", rows=50)


@pytest.fixture(autouse=True)
def operator_token(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The operator's token in MLGATE_TOKEN, as in the operator's own shell."""
    return use_token(monkeypatch, load_settings(workspace).state_dir, "data-ops", "operator")


def add(workspace: Path, *paths: Path, capsys) -> tuple[int, str, str]:
    code = main(["data", "add", str(workspace), *map(str, paths)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_add_prints_only_the_content_hash_on_stdout(workspace: Path, csv: Path, capsys) -> None:
    code, out, err = add(workspace, csv, capsys=capsys)
    body = csv.read_bytes()
    manifest = f"credit.csv\t{len(body)}\t{hashlib.sha256(body).hexdigest()}\n".encode()
    assert code == 0 and out == hashlib.sha256(manifest).hexdigest() + "\n"
    assert "imported: 1 file(s), 50 rows; schema hash" in err and "import recorded in the audit chain" in err
    assert (workspace / "data" / "shadow" / out.strip() / "credit.csv").read_bytes() == body


def test_adding_the_same_file_twice_prints_the_same_hash_and_reuses_it(workspace: Path, csv: Path, capsys) -> None:
    _, first, _ = add(workspace, csv, capsys=capsys)
    before = snapshot(workspace / "data")
    code, second, err = add(workspace, csv, capsys=capsys)
    assert code == 0 and first == second and "already present, verified and reused" in err
    assert snapshot(workspace / "data") == before


def test_add_refuses_a_directory_that_is_not_a_workspace(tmp_path: Path, csv: Path, capsys) -> None:
    code, out, err = add(tmp_path, csv, capsys=capsys)
    assert code == 2 and out == "" and "not a governed workspace" in err and "mlgate init" in err
    assert not (tmp_path / "data").exists()


def test_add_refuses_other_file_types_with_what_to_do(workspace: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "notes.json"
    other.write_text("{}")
    code, out, err = add(workspace, other, capsys=capsys)
    assert code == 2 and out == "" and "not a CSV or Parquet file name" in err and "what to do:" in err
    assert not (workspace / "data").exists()


def test_list_prints_each_registered_hash_with_its_import(workspace: Path, csv: Path, capsys) -> None:
    _, content_hash, _ = add(workspace, csv, capsys=capsys)
    assert main(["data", "list", "--workspace", str(workspace)]) == 0
    fields = capsys.readouterr().out.rstrip("\n").split("\t")
    assert fields[:2] == [content_hash.strip(), "registered"] and "50 rows, files credit.csv, imported by" in fields[2]


def test_list_names_the_importer_credential_and_time_the_audit_record_holds_not_an_edited_entry(workspace: Path, csv: Path, capsys) -> None:
    import json  # noqa: PLC0415

    add(workspace, csv, capsys=capsys)
    registry = load_settings(workspace).state_dir / "datasets.json"
    document = json.loads(registry.read_text())
    entry = next(iter(document["datasets"].values()))
    vouched = (entry["imported_by"]["name"], entry["imported_by"]["credential"], entry["imported_at"])
    entry.update(imported_by={"name": "chief-risk-officer", "role": "human", "credential": "cro:000000000000"}, imported_at="2020-01-01T00:00:00Z")
    registry.write_text(json.dumps(document))
    assert main(["data", "list", "--workspace", str(workspace)]) == 0
    shown = capsys.readouterr().out
    assert "chief-risk-officer" not in shown and "cro:" not in shown and "2020-01-01" not in shown
    assert f"imported by {vouched[0]} ({vouched[1]}) at {vouched[2]}" in shown, shown


def test_verify_exits_0_when_intact_and_1_with_the_problem_when_tampered(workspace: Path, csv: Path, capsys) -> None:
    _, out, _ = add(workspace, csv, capsys=capsys)
    content_hash = out.strip()
    assert main(["data", "verify", "--workspace", str(workspace), content_hash]) == 0
    assert "verified" in capsys.readouterr().out
    with writable(workspace / "data" / "shadow" / content_hash) as folder:
        (folder / "extra.csv").write_text("a\n1\n")
    assert main(["data", "verify", "--workspace", str(workspace), content_hash]) == 1
    err = capsys.readouterr().err
    assert "FAILED [data.integrity]" in err and "extra.csv was not imported" in err and "what to do:" in err


def test_verify_refuses_a_path_instead_of_a_hash(workspace: Path, capsys) -> None:
    assert main(["data", "verify", "--workspace", str(workspace), "../../etc"]) == 2
    assert "64 lowercase hexadecimal" in capsys.readouterr().err


def test_add_needs_an_operator_token_and_writes_nothing_without_one(workspace: Path, csv: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    code, out, err = add(workspace, csv, capsys=capsys)
    assert code != 0 and out == "" and "operator" in err and "MLGATE_TOKEN" in err and not (workspace / "data").exists()
    monkeypatch.setenv(TOKEN_ENV, issue(load_settings(workspace).state_dir, "analyst", "human"))
    code, out, err = add(workspace, csv, capsys=capsys)
    assert code != 0 and out == "" and "role human" in err and not (workspace / "data").exists()


def test_the_import_names_the_operator_and_the_credential(workspace: Path, csv: Path, capsys) -> None:
    add(workspace, csv, capsys=capsys)
    assert main(["data", "list", "--workspace", str(workspace)]) == 0
    assert "imported by data-ops (data-ops:" in capsys.readouterr().out


def test_data_add_runs_as_a_real_process(workspace: Path, csv: Path, operator_token: str) -> None:
    env = {**os.environ, TOKEN_ENV: operator_token}
    done = subprocess.run([sys.executable, "-m", "server.cli", "data", "add", str(workspace), str(csv)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and len(done.stdout.strip()) == 64
    assert (workspace / "data" / "shadow" / done.stdout.strip()).is_dir()


def test_add_takes_the_workspace_as_an_option_like_every_other_command(workspace: Path, csv: Path, capsys) -> None:
    code, positional, _ = add(workspace, csv, capsys=capsys)
    assert code == 0
    assert main(["data", "add", "--workspace", str(workspace), str(csv)]) == 0
    assert capsys.readouterr().out == positional


def test_add_with_no_data_file_exits_2_saying_how_to_name_them(workspace: Path, csv: Path, capsys) -> None:
    assert main(["data", "add", str(workspace)]) == 2
    assert "what to do: name the workspace and the files" in capsys.readouterr().err
    assert not (load_settings(workspace).state_dir / "datasets.json").exists()


def test_add_of_files_alone_imports_them_into_the_workspace_it_runs_in(workspace: Path, csv: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code, named, _ = add(workspace, csv, capsys=capsys)
    monkeypatch.chdir(workspace)
    assert code == 0 and main(["data", "add", str(csv)]) == 0
    assert capsys.readouterr().out == named


def test_add_of_files_alone_outside_a_workspace_names_the_directory_and_what_to_do(tmp_path: Path, csv: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["data", "add", str(csv)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not a governed workspace" in err and "mlgate init" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / ".mlgate").exists()
