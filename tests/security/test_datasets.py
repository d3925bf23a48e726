"""Attacks on the dataset store by an agent with its own shell (issue 8 item 4): a dataset nobody
imported must not load or train, however correct its bytes and manifest look.

Each test performs the attack for real on a real workspace (files written by hand, directories
copied between workspaces, a registry line pasted in) and calls the server through a real MCP
client; the operator side is the real CLI (`mlgate data add|list|verify` through server.cli.main).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import main
from server.credentials import TOKEN_ENV
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import build_ports
from server.settings import Settings, load_settings
from server.workspace import init_workspace
from tests.mcp_calls import call_tool
from tests.credentials import issue, use_token

pytestmark = pytest.mark.anyio
REASONING = {"hypothesis_category": "baseline", "change_description": "Train on the dataset found in data/shadow.", "expected_effect": "A first roc_auc on that data."}


def fabricate(workspace: Path, name: str, body: bytes) -> str:
    """A dataset directory made by hand exactly as an import would lay it out (correct manifest,
    read-only files): its bytes verify against its name."""
    manifest = f"{name}\t{len(body)}\t{hashlib.sha256(body).hexdigest()}\n".encode()
    content_hash = hashlib.sha256(manifest).hexdigest()
    folder = workspace / "data" / "shadow" / content_hash
    folder.mkdir(parents=True)
    (folder / name).write_bytes(body)
    (folder / "manifest.tsv").write_bytes(manifest)
    for path in (folder / name, folder / "manifest.tsv"):
        path.chmod(0o444)
    folder.chmod(0o555)
    return content_hash


@pytest.fixture
def data_add(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[[Path, Path], str]:
    """`mlgate data add` run by the operator, with their token in their own shell."""

    def run(workspace: Path, source: Path) -> str:
        use_token(monkeypatch, load_settings(workspace).state_dir, "data-ops", "operator")
        assert main(["data", "add", str(workspace), str(source)]) == 0
        monkeypatch.delenv(TOKEN_ENV)
        return capsys.readouterr().out.strip()

    return run


call = call_tool


def use_dataset(workspace: Path, content_hash: str) -> None:
    """What an agent with a shell does to train on it: point the config at it and commit."""
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = content_hash
    document["model"] = {"type": "logistic_regression", "params": {}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    GitRepo(workspace).commit_all("use the dataset")


def assert_refused_as_unimported(denied: bool, payload: dict[str, Any]) -> None:
    assert denied and payload["rule_id"] == "data.registered", payload
    assert "not imported by an operator" in payload["reason"] and "mlgate data add" in payload["remediation"]


def listed(workspace: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    assert main(["data", "list", "--workspace", str(workspace)]) == 0
    return {line.split("\t")[0]: line.split("\t")[1] for line in capsys.readouterr().out.splitlines()}


async def test_a_hand_made_directory_with_a_correct_manifest_neither_loads_nor_trains(workspace: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content_hash = fabricate(workspace, "credit.csv", write_credit_csv(tmp_path / "credit.csv", rows=120).read_bytes())
    assert build_ports(settings).cas.verify(content_hash, registered=False).recomputed == content_hash  # the bytes are fine
    assert_refused_as_unimported(*await call(settings, "load_dataset", {"content_hash": content_hash}))
    use_dataset(workspace, content_hash)
    assert_refused_as_unimported(*await call(settings, "run_experiment", {"reasoning": REASONING}))
    assert listed(workspace, capsys) == {content_hash: "UNREGISTERED"}
    assert main(["data", "verify", "--workspace", str(workspace), content_hash]) == 1
    assert "NOT USABLE [data.registered]" in capsys.readouterr().err


async def test_the_same_file_loads_once_an_operator_imports_it(workspace: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_add: Callable[[Path, Path], str]) -> None:
    source = write_credit_csv(tmp_path / "credit.csv", rows=120)
    content_hash = fabricate(workspace, "credit.csv", source.read_bytes())
    assert data_add(workspace, source) == content_hash  # the import verifies and reuses the directory
    denied, payload = await call(settings, "load_dataset", {"content_hash": content_hash})
    assert not denied and payload["rows"] == 120
    assert listed(workspace, capsys) == {content_hash: "registered"}


async def test_a_dataset_copied_from_another_workspace_with_its_registry_is_refused(workspace: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_add: Callable[[Path, Path], str]) -> None:
    other = init_workspace(tmp_path / "other")
    content_hash = data_add(other, write_credit_csv(tmp_path / "credit.csv", rows=120))
    shutil.copytree(other / "data", workspace / "data")
    assert_refused_as_unimported(*await call(settings, "load_dataset", {"content_hash": content_hash}))
    # The other workspace's registry copied too: its entry cites a record of the other chain.
    shutil.copy(other / ".mlgate" / "datasets.json", settings.state_dir / "datasets.json")
    denied, payload = await call(settings, "load_dataset", {"content_hash": content_hash})
    assert_refused_as_unimported(denied, payload)
    assert "audit chain holds no record" in payload["reason"]
    assert listed(workspace, capsys) == {content_hash: "UNAUDITED"}
    assert main(["data", "verify", "--workspace", str(workspace)]) == 1
    assert "UNAUDITED" in capsys.readouterr().err


async def test_a_registry_line_pasted_by_hand_grants_nothing(workspace: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_add: Callable[[Path, Path], str]) -> None:
    real = data_add(workspace, write_credit_csv(tmp_path / "credit.csv", rows=120))
    forged = fabricate(workspace, "more.csv", write_credit_csv(tmp_path / "more.csv", rows=90, seed=7).read_bytes())
    registry = settings.state_dir / "datasets.json"
    document = json.loads(registry.read_text())
    genuine = document["datasets"][real]
    pasted = {**genuine, "content_hash": forged, "rows": 90, "files": [{"name": "more.csv", "size": 0, "sha256": "0" * 64}]}
    invented = {**pasted, "audit": {"seq": 999, "hash": "ab" * 32, "offset": 0}}
    for entry, says in ((pasted, "is not the import of this dataset"), (invented, "audit chain holds no record")):
        document["datasets"][forged] = entry
        registry.write_text(json.dumps(document))
        denied, payload = await call(settings, "load_dataset", {"content_hash": forged})
        assert_refused_as_unimported(denied, payload)
        assert says in payload["reason"]
    assert listed(workspace, capsys) == {real: "registered", forged: "UNAUDITED"}
    assert main(["audit", "verify", "--workspace", str(workspace)]) == 1
    report = capsys.readouterr().out
    assert f"NOT VOUCHED: dataset registry entry {forged}" in report and f"dataset registry entry {real}" not in report
    assert not (await call(settings, "load_dataset", {"content_hash": real}))[0]


async def test_run_experiment_refuses_a_dataset_whose_registry_file_is_garbage(workspace: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], data_add: Callable[[Path, Path], str]) -> None:
    content_hash = data_add(workspace, write_credit_csv(tmp_path / "credit.csv", rows=120))
    use_dataset(workspace, content_hash)
    (settings.state_dir / "datasets.json").write_text("{not json")
    denied, payload = await call(load_settings(workspace, transport="memory"), "run_experiment", {"reasoning": REASONING, "dry_run": True})
    assert_refused_as_unimported(denied, payload)
    assert "datasets.json is not valid JSON" in payload["reason"]


async def test_an_agent_at_its_own_shell_cannot_import_data_in_the_operators_name(workspace: Path, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_credit_csv(tmp_path / "credit.csv", rows=120)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["data", "add", str(workspace), str(source)]) != 0  # no token: refused before anything is written
    monkeypatch.setenv(TOKEN_ENV, issue(settings.state_dir, "agent-1", "agent"))
    assert main(["data", "add", str(workspace), str(source)]) != 0  # an agent's token is not an operator's
    err = capsys.readouterr().err
    assert "operator" in err and not (workspace / "data").exists() and not (settings.state_dir / "datasets.json").exists()
