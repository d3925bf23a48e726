"""mlgate against an MLflow tracking server on PostgreSQL (tests/postgres.py: a private cluster on
loopback, `mlflow server --serve-artifacts`), pointed at it by URI only: a real run trained in
bwrap, open_pr, reproduce, promote to candidate and to champion with a second human's approval,
the alias history, all through the in-memory MCP client; and a `postgresql://`
tracking_uri used directly, which must never put artifacts into the local state dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.audit import verify
from server.audit.witness import CHAIN_TAG, chain_id
from server.audit.workspace import crosscheck_workspace
from server.cli import main
from server.ports import build_ports
from server.settings import load_settings
from server.tracking import WITNESS_TAG, MlflowTracking
from tests.credentials import approver
from tests.postgres import PostgresCluster, TrackingServer
from tests.tools.promotion_lab import MODEL, Lab, build_lab, call
from tools.errors import InvalidInput

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tracking_server: TrackingServer, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("pg-lab"), tracking_uri=tracking_server.url)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_a_run_lands_in_postgres_with_its_artifacts_on_the_tracking_server(lab: Lab, tracking_server: TrackingServer) -> None:
    failed, content = await call(lab, "get_run", {"run_id": lab.run_id})
    assert not failed and content["run_id"] == lab.run_id and content["status"] == "FINISHED", content
    run = lab.ports.tracking.get_run(lab.run_id)
    assert run["artifact_uri"].startswith("mlflow-artifacts:/") and run["params"]["git_dirty"] == "false"
    served = {p.name for p in files_under(tracking_server.artifacts / run["experiment_id"] / lab.run_id)}
    assert {"evaluation_report.json", "gate_receipt.json"} <= served
    assert not (lab.settings.state_dir / "mlartifacts").exists() and not (lab.settings.state_dir / "mlflow.db").exists()


async def test_reproduce_and_promotion_to_champion_with_its_alias_history_work_unchanged_on_the_tracking_server(lab: Lab) -> None:
    failed, reproduced = await call(lab, "reproduce", {"run_id": lab.run_id})
    assert not failed and reproduced["reproduced"] is True, reproduced
    failed, candidate = await call(lab, "promote", {"run_id": lab.run_id})
    assert not failed and candidate["version"] == "1", candidate
    failed, refused = await call(lab, "promote", {"run_id": lab.run_id, "alias": "champion"}, lab.human())
    assert failed and refused["approval_status"] == "pending", refused
    lab.ports.approvals.decide(refused["approval_id"], approve=True, approver=approver(lab.settings.state_dir, "bob"), note=None, now="2026-01-01T00:01:00Z")
    failed, champion = await call(lab, "promote", {"run_id": lab.run_id, "alias": "champion"}, lab.human())
    assert not failed and champion["stage_changes"] == [{"version": "1", "from": "candidate", "to": "champion"}], champion
    registry = lab.ports.registry
    assert registry.alias_version(MODEL, "champion") == "1" and registry.stack(MODEL, "champion") == ["1"]
    assert registry.version(MODEL, "1")["run_id"] == lab.run_id and registry.stage(MODEL, "1") == "champion"
    assert [e["action"] for e in registry.events(MODEL, "champion")] == ["promote"] and registry.events(MODEL, "champion")[0]["audit_witness"]
    assert verify(lab.settings.audit_path).ok


async def test_the_chain_cross_checks_the_witnesses_on_the_tracking_server(lab: Lab, tracking_server: TrackingServer) -> None:
    settings = load_settings(lab.workspace, tracking_uri=tracking_server.url)
    report = crosscheck_workspace(settings)
    assert report.ok and not report.notes, (report.findings, report.notes)
    mine = lab.ports.tracking.search_runs([lab.ports.tracking.find_experiment("demo-bank/credit-default")], f"tags.`{CHAIN_TAG}` = '{chain_id(settings.audit_path)}'", max_results=1000)
    assert len(mine) >= 4 and report.witnesses.get("mlflow", 0) >= 2 * len(mine)


def test_runs_witnessed_by_another_workspaces_chain_on_a_shared_server_are_not_checked_against_this_one(lab: Lab, tracking_server: TrackingServer) -> None:
    settings = load_settings(lab.workspace, tracking_uri=tracking_server.url)
    experiment = lab.ports.tracking.find_experiment("demo-bank/credit-default")
    forged = {WITNESS_TAG: f"1:{'ab' * 32}", CHAIN_TAG: chain_id(settings.audit_path)}
    run_id = lab.client.create_run(experiment, tags=forged).info.run_id
    assert {f.kind for f in crosscheck_workspace(settings).findings} == {"witness_mismatch"}
    lab.client.set_tag(run_id, CHAIN_TAG, "f" * 64)  # the same witness, from another workspace's chain
    assert crosscheck_workspace(settings).ok


def test_a_database_tracking_uri_without_an_artifact_root_is_refused(workspace: Path) -> None:
    settings = load_settings(workspace, transport="memory", tracking_uri="postgresql://mlgate@127.0.0.1:5432/mlflow")
    with pytest.raises(InvalidInput) as refused:
        build_ports(settings)
    assert refused.value.rule_id == "tracking.artifact_root" and "state dir" in refused.value.reason


def test_an_artifact_root_inside_the_state_dir_is_refused_for_a_database_uri(workspace: Path) -> None:
    inside = workspace / ".mlgate" / "shared-artifacts"
    settings = load_settings(workspace, transport="memory", tracking_uri="mysql://mlgate@127.0.0.1/mlflow", tracking={"artifact_root": str(inside)})
    with pytest.raises(InvalidInput) as refused:
        MlflowTracking.for_settings(settings)
    assert refused.value.rule_id == "tracking.artifact_root" and "inside the state dir" in refused.value.reason


def test_a_postgresql_uri_used_directly_keeps_artifacts_in_the_configured_root(workspace: Path, postgres: PostgresCluster, tmp_path: Path) -> None:
    uri = postgres.create_database("direct")
    settings = load_settings(workspace, transport="memory", tracking_uri=uri, tracking={"artifact_root": str(tmp_path / "shared")})
    tracking = MlflowTracking.for_settings(settings)
    run_id = tracking.start_run(tracking.get_or_create_experiment("acme/churn"), {"purpose": "direct"})
    tracking.log_json_artifact(run_id, "report.json", {"auc": 0.8})
    tracking.end_run(run_id, "FINISHED")
    assert [p.name for p in files_under(tmp_path / "shared")] == ["report.json"]
    assert json.loads((next(iter(files_under(tmp_path / "shared")))).read_text()) == {"auc": 0.8}
    assert not (settings.state_dir / "mlartifacts").exists()
    assert tracking.get_run(run_id)["status"] == "FINISHED"


def test_mlgate_serve_refuses_to_start_on_a_database_uri_without_an_artifact_root(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLGATE_TRACKING_URI", "postgresql://mlgate:s3cret-pass@127.0.0.1:5432/mlflow")
    assert main(["serve", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "explicit artifact root" in err and "MLGATE_TRACKING_ARTIFACT_ROOT" in err and "s3cret-pass" not in err
    assert not (workspace / ".mlgate" / "mlartifacts").exists()


def _refuse_connections(postgres: PostgresCluster, database: str, refuse: bool) -> None:
    """The database stops (or resumes) taking connections, and the open ones are cut, as a
    restarting or overloaded PostgreSQL looks to its clients."""
    statements = [f"ALTER DATABASE {database} ALLOW_CONNECTIONS {'false' if refuse else 'true'}"]
    if refuse:
        statements.append(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
    for sql in statements:
        postgres._run(str(postgres.bin / "psql"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user, "-d", "postgres", "-qAtc", sql)


async def test_a_tracking_database_refusing_connections_is_a_retry_refusal_without_driver_text(workspace: Path, postgres: PostgresCluster, tmp_path: Path) -> None:
    from mcp import Client

    from server.app import build_server
    from tests.reliability.faults import answer_problems
    from tests.reliability.fault_worker import answer

    uri = postgres.create_database("pgfault7")
    settings = load_settings(workspace, transport="memory", tracking_uri=uri, tracking={"artifact_root": str(tmp_path / "shared")})
    ports = build_ports(settings)
    try:
        async with Client(build_server(settings, ports)) as client:
            assert not (await client.call_tool("list_runs", {})).is_error  # creates MLflow's tables
            _refuse_connections(postgres, "pgfault7", refuse=True)
            try:
                refused = answer(await client.call_tool("list_runs", {}))
            finally:
                _refuse_connections(postgres, "pgfault7", refuse=False)
            after = await client.call_tool("list_runs", {})
    finally:
        ports.audit.close()
    assert refused["is_error"] and refused["payload"]["rule_id"] == "tracking.unavailable", refused
    assert answer_problems({"tool": "list_runs", **refused}) == [] and "pgfault7" not in refused["text"] and str(postgres.port) not in refused["text"]
    assert not after.is_error, after.structured_content
    assert verify(settings.audit_path).ok
    assert any("tracking.unavailable" in r.get("rule_ids", ()) for r in ports.audit.tail(6))
