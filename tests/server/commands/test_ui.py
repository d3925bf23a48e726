"""`mlgate ui`: the MLflow UI on the workspace's store, loopback only, started for real once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx2
import pytest

from server.cli import main
from server.commands.ui import is_loopback, read_only, ui_argv
from server.ports import build_ports
from server.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 240  # a cold MLflow server import on a loaded 2-core machine


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False), ("example.org", False), ("", False)])
def test_only_loopback_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_ui_argv_points_tracking_and_registry_at_the_workspace_store_read_only_without_the_artifact_proxy() -> None:
    argv = ui_argv("/py", "sqlite:////ws/.mlgate/mlflow.db", "127.0.0.1", 5001)
    assert argv[:4] == ["/py", "-m", "mlflow", "ui"] and "--no-serve-artifacts" in argv
    assert argv[argv.index("--backend-store-uri") + 1] == argv[argv.index("--registry-store-uri") + 1] == "sqlite:///file:/ws/.mlgate/mlflow.db?mode=ro&uri=true"
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "5001"


def test_the_read_only_store_reads_a_workspace_path_with_a_space_and_a_hash_and_refuses_writes(tmp_path: Path) -> None:
    import sqlalchemy  # noqa: PLC0415 - what MLflow opens its store with

    path = tmp_path / "risk team #2" / "mlflow.db"
    path.parent.mkdir()
    with sqlalchemy.create_engine(f"sqlite:///{path}").begin() as writable:
        writable.execute(sqlalchemy.text("create table runs (name text)"))
        writable.execute(sqlalchemy.text("insert into runs values ('baseline')"))
    engine = sqlalchemy.create_engine(read_only(f"sqlite:///{path}"))
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("select name from runs")).scalars().all() == ["baseline"]
        with pytest.raises(sqlalchemy.exc.OperationalError, match="readonly"):
            connection.execute(sqlalchemy.text("update runs set name = 'forged'"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["risk team #2"]  # no stray database opened beside it
    assert read_only("postgresql://mlflow@db/mlflow") == "postgresql://mlflow@db/mlflow"


def test_a_non_loopback_bind_is_refused(workspace: Path, capsys) -> None:
    assert main(["ui", "--workspace", str(workspace), "--host", "0.0.0.0"]) == 2
    assert "no authentication" in capsys.readouterr().err


def test_a_workspace_without_runs_is_told_so(workspace: Path, capsys) -> None:
    assert main(["ui", "--workspace", str(workspace)]) == 2
    assert "no runs yet" in capsys.readouterr().err


def test_a_workspace_on_a_tracking_server_is_sent_to_the_servers_own_ui(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLGATE_TRACKING_URI", "http://bob:hunter2@127.0.0.1:5999")
    assert main(["ui", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "tracking server" in err and "hunter2" not in err


def test_a_workspace_on_a_shared_database_is_refused_rather_than_opened_writable(workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLGATE_TRACKING_URI", "postgresql://bob:hunter2@127.0.0.1:5432/mlflow")
    monkeypatch.setenv("MLGATE_TRACKING_ARTIFACT_ROOT", str(workspace.parent / "artifacts"))
    assert main(["ui", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "shared postgresql database" in err and "read-only database role" in err and "hunter2" not in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.anyio
async def test_the_ui_serves_the_workspace_runs_on_loopback(workspace: Path) -> None:
    ports = build_ports(load_settings(workspace))
    experiment = ports.tracking.get_or_create_experiment("demo-bank/credit-default")
    run_id = ports.tracking.start_run(experiment, {"client_name": "demo-bank"})
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "ui", "--workspace", str(workspace), "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        run = await _get_run(port, run_id)
        assert run["info"]["run_id"] == run_id
        await _writes_are_refused(port, run_id, ports.tracking.get_run(run_id)["tags"], workspace)
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


async def _writes_are_refused(port: int, run_id: str, tags: dict, workspace: Path) -> None:
    """Any local process reaches the port: neither a tag nor an uploaded artifact gets through."""
    api = f"http://127.0.0.1:{port}/api/2.0"
    async with httpx2.AsyncClient() as client:
        tagged = await client.post(f"{api}/mlflow/runs/set-tag", json={"run_id": run_id, "key": "outcome", "value": "confirmed"})
        uploaded = await client.put(f"{api}/mlflow-artifacts/artifacts/forged/evil.txt", content=b"evil")
        after = (await client.get(f"{api}/mlflow/runs/get", params={"run_id": run_id})).json()["run"]["data"].get("tags", [])
    assert tagged.status_code >= 400 and uploaded.status_code >= 400
    assert {t["key"]: t["value"] for t in after}.get("outcome") == tags.get("outcome")
    assert not list(workspace.rglob("evil.txt"))


async def _get_run(port: int, run_id: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get"
    async with httpx2.AsyncClient() as client:
        with anyio.fail_after(START_TIMEOUT_S):
            while True:
                try:
                    response = await client.get(url, params={"run_id": run_id})
                    if response.status_code == 200:
                        return response.json()["run"]
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.2)


def test_a_port_in_use_exits_2_with_what_to_do_instead_of_waiting_silently(workspace: Path, capsys) -> None:
    assert main(["models", "list", "--workspace", str(workspace)]) == 0  # the embedded store, so the UI has something to serve
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        capsys.readouterr()
        assert main(["ui", "--workspace", str(workspace), "--port", str(taken.getsockname()[1])]) == 2
    assert "is in use" in capsys.readouterr().err


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == group:
                members.append(int(entry.name))
        except ProcessLookupError:
            continue
    return members


@pytest.mark.anyio
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_stopping_mlgate_ui_stops_the_web_server_it_started(workspace: Path, stop: signal.Signals) -> None:
    """A `kill` of mlgate ui alone (a service manager, a script) left MLflow's web server running."""
    ports = build_ports(load_settings(workspace))
    run_id = ports.tracking.start_run(ports.tracking.get_or_create_experiment("demo-bank/credit-default"), {"client_name": "demo-bank"})
    port, env = _free_port(), {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "ui", "--workspace", str(workspace), "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    try:
        await _get_run(port, run_id)
        groups = {process.pid} | {os.getpgid(int(child)) for child in children.read_text().split()}
        process.send_signal(stop)  # to mlgate ui alone, not to its group
        process.wait(timeout=60)
        with anyio.fail_after(30):
            while any(_group_members(group) for group in groups):
                await anyio.sleep(0.1)
    finally:
        for group in {process.pid} | {os.getpgid(int(c)) for c in (children.read_text().split() if children.exists() else ())}:
            for pid in _group_members(group):
                os.kill(pid, signal.SIGKILL)
