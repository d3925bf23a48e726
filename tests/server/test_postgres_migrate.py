"""`mlgate tracking migrate`: a workspace's real sqlite store (a run trained in bwrap, its PR, a
registered candidate with its alias history) copied into a fresh PostgreSQL database of the
session's cluster, then used by mlgate through a `postgresql://` tracking_uri: the same run ids,
artifacts readable from the new root, the registry and aliases intact, every audit witness still
cross-checking, and the migration itself in the chain."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.audit import verify
from server.audit.workspace import crosscheck_workspace
from server.cli import main
from server.ports import build_ports
from server.settings import load_settings
from tests.credentials import issue
from tests.postgres import PostgresCluster
from tests.tools.promotion_lab import MODEL, Lab, build_lab, call

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    lab = build_lab(tmp_path_factory.mktemp("migrate"))
    failed, content = anyio.run(call, lab, "promote", {"run_id": lab.run_id})
    assert not failed and content["version"] == "1", content
    return lab


def migrate(lab: Lab, uri: str, artifacts: Path) -> int:
    """The operator's migration, with the operator's token in MLGATE_TOKEN as in their own shell."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLGATE_TOKEN", issue(load_settings(lab.workspace).state_dir, "olga", "operator"))
        return main(["tracking", "migrate", "--to", uri, "--artifacts", str(artifacts), "--workspace", str(lab.workspace)])


async def test_a_migrated_store_keeps_run_ids_artifacts_registry_and_witnesses(lab: Lab, postgres: PostgresCluster, tmp_path: Path) -> None:
    uri, artifacts = postgres.create_database("migrated"), tmp_path / "shared-artifacts"
    before = lab.ports.tracking.get_run(lab.run_id)
    assert await anyio.to_thread.run_sync(migrate, lab, uri, artifacts) == 0
    settings = load_settings(lab.workspace, transport="memory", tracking_uri=uri, tracking={"artifact_root": str(artifacts)})
    ports = build_ports(settings)
    after = ports.tracking.get_run(lab.run_id)
    assert (after["params"], after["metrics"], after["status"]) == (before["params"], before["metrics"], "FINISHED")
    assert after["artifact_uri"].startswith(artifacts.resolve().as_uri())
    report = Path(ports.tracking.client.download_artifacts(lab.run_id, "evaluation_report.json", str(tmp_path)))
    assert report.read_bytes() == (Path(before["artifact_uri"].removeprefix("file://")) / "evaluation_report.json").read_bytes()
    assert ports.registry.alias_version(MODEL, "candidate") == "1" and ports.registry.version(MODEL, "1")["run_id"] == lab.run_id
    cross = crosscheck_workspace(settings)
    assert cross.ok and cross.witnesses.get("mlflow", 0) >= 2 and cross.witnesses.get("registry", 0) >= 1, (cross.findings, cross.notes)
    record = ports.audit.tail(1)[0]
    assert record["tool"] == "tracking_migrate" and record["rows"]["runs"] >= 1 and verify(settings.audit_path).ok
    (kept,) = sorted((settings.state_dir / "tracking-migrations").iterdir())
    assert json.loads(kept.read_text())["run_ids"][lab.run_id] == lab.run_id
    # the migrated store goes on working: promote finds the existing version, a new experiment gets a fresh id
    async with Client(build_server(settings, ports)) as client:
        again = await client.call_tool("promote", {"run_id": lab.run_id})
    assert not again.is_error and again.structured_content["version"] == "1" and again.structured_content["created"] is False, again.structured_content
    existing = {e["id"] for e in ports.tracking.experiments()}
    assert ports.tracking.get_or_create_experiment("acme/after-migration") not in existing


def test_a_target_database_in_use_is_refused(lab: Lab, postgres: PostgresCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = postgres.create_database("in_use")
    assert migrate(lab, uri, tmp_path / "a") == 0
    assert migrate(lab, uri, tmp_path / "b") == 2
    assert "already holds runs" in capsys.readouterr().err
