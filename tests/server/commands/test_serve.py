"""`mlgate serve`: refusals in-process through server.cli.main; stdio and HTTP as real processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from server.audit import read_tail
from server.auth import TokenStore
from server.cli import main
from server.http import free_loopback_bind
from server.commands.serve import stdio_refusal, warn_if_open
from server.settings import Settings, load_settings
from server.tracking import MlflowTracking
from tests.credentials import issue
from tests.e2e.transports import REPO_ROOT, bearer, denied_calls, stdio

pytestmark = pytest.mark.anyio
START_TIMEOUT_S = 60.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


def _serve_http(workspace: Path, where: str) -> list[str]:
    return ["serve", "--workspace", str(workspace), "--http", where]


def test_http_without_any_token_refuses_to_start(workspace: Path, capsys) -> None:
    assert main(_serve_http(workspace, "127.0.0.1:8765")) == 2
    err = capsys.readouterr().err
    assert "needs at least one bearer token" in err and "mlgate token create" in err


def test_http_on_a_non_loopback_address_without_allowed_hosts_refuses_to_start(workspace: Path, settings: Settings, capsys) -> None:
    TokenStore(settings.state_dir).create("remote-agent", "agent")
    assert main(_serve_http(workspace, "0.0.0.0:8765")) == 2
    assert "non-loopback" in capsys.readouterr().err


def _on_ray(settings: Settings, address: str) -> Settings:
    (settings.state_dir / "server.yaml").write_text(f"executor:\n  backend: ray\n  ray:\n    address: '{address}'\n")
    return load_settings(settings.workspace, transport="stdio")


def test_stdio_with_a_ray_address_taken_from_the_environment_refuses_to_start(workspace: Path, settings: Settings, capsys, monkeypatch) -> None:
    _on_ray(settings, "auto")
    monkeypatch.setenv("RAY_ADDRESS", "10.255.0.9:6379")  # as an agent could set it in its own environment
    assert main(["serve", "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert "RAY_ADDRESS" in err and "GCS host:port" in err and "10.255.0.9" not in err


def test_stdio_with_an_explicit_ray_address_or_the_local_sandbox_may_start(settings: Settings) -> None:
    assert stdio_refusal(settings) is None
    assert stdio_refusal(_on_ray(settings, "10.0.0.5:6379")) is None
    assert stdio_refusal(_on_ray(settings, "auto")) is not None


def test_a_state_directory_open_to_other_users_is_named_at_start_and_left_as_it_is(settings: Settings, capsys) -> None:
    os.chmod(settings.state_dir, 0o755)
    warn_if_open(settings)
    err = capsys.readouterr().err
    assert f"the state directory {settings.state_dir} is open to other users of this host (mode 0755)" in err and f"chmod 700 {settings.state_dir}" in err
    assert stat.S_IMODE(settings.state_dir.stat().st_mode) == 0o755
    os.chmod(settings.state_dir, 0o700)
    warn_if_open(settings)
    assert capsys.readouterr().err == ""


def test_a_malformed_bind_address_refuses_to_start(workspace: Path, capsys) -> None:
    assert main(_serve_http(workspace, "localhost")) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def _first_answer(url: str, process: subprocess.Popen, timeout: float) -> httpx2.Response:
    """Polls `url` until the server answers, bounded by `timeout`; fails if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx2.get(url, timeout=1.0)
        except httpx2.TransportError:
            try:
                process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise AssertionError(f"mlgate serve exited early: {process.stderr.read().decode()}") from None
    raise TimeoutError(f"no answer from {url} within {timeout}s")


def test_serve_http_runs_until_terminated_and_requires_the_token(workspace: Path, settings: Settings) -> None:
    token = TokenStore(settings.state_dir).create("remote-agent", "agent")
    bind, sock = free_loopback_bind()
    sock.close()
    argv = [sys.executable, "-m", "server.cli", *_serve_http(workspace, f"127.0.0.1:{bind.port}")]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _first_answer(f"{bind.url}/mcp", process, START_TIMEOUT_S).status_code == 401
        headers = {**bearer(token), "Accept": "application/json, text/event-stream"}
        assert httpx2.post(f"{bind.url}/mcp", json=INITIALIZE, headers=headers, timeout=10.0).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM)
    assert b"bearer token required" in process.stderr.read()


async def test_stdio_serves_the_governed_tools_as_the_configured_principal(workspace: Path, settings: Settings) -> None:
    async with stdio(workspace, MLGATE_PRINCIPAL="local-agent-7") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        tool, arguments = denied_calls(names)[0]
        result = await client.call_tool(tool, arguments)
    assert result.is_error and result.structured_content["decision"] == "deny"
    record = read_tail(settings.audit_path, 1)[0]
    assert (record["principal"], record["role"], record["transport"], record["tool"]) == ("local-agent-7", "agent", "stdio", tool)
    assert "credential" not in record


async def test_a_humans_stdio_server_acts_for_her_token(workspace: Path, settings: Settings) -> None:
    token = issue(settings.state_dir, "risk-officer")
    async with stdio(workspace, MLGATE_ROLE="human", MLGATE_TOKEN=token) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        calls = denied_calls(names)
        assert calls, f"no known denial among the offered tools {sorted(names)}"
        tool, arguments = calls[0]
        result = await client.call_tool(tool, arguments)
    assert result.is_error and result.structured_content["decision"] == "deny"
    record = read_tail(settings.audit_path, 1)[0]
    assert (record["principal"], record["role"], record["transport"], record["tool"]) == ("risk-officer", "human", "stdio", tool)
    assert record["credential"].startswith("risk-officer:")


async def test_a_starting_server_marks_runs_of_a_dead_server_failed(workspace: Path, settings: Settings) -> None:
    import anyio

    from tests.server.test_tracking import dead_process_identity

    dead = MlflowTracking(settings.mlflow_uri, settings.state_dir / "mlartifacts", owner=dead_process_identity())
    orphan = dead.start_run(dead.get_or_create_experiment("demo-bank/credit-default"), {})
    async with stdio(workspace) as client:
        await client.list_tools()
        with anyio.fail_after(START_TIMEOUT_S):
            while dead.get_run(orphan)["status"] != "FAILED":
                await anyio.sleep(0.1)
    assert "orphaned" in dead.get_run(orphan)["tags"]["mlgate.end_reason"]


async def test_a_starting_server_gathers_planner_statistics_for_a_store_that_has_none(workspace: Path, settings: Settings) -> None:
    import sqlite3

    import anyio

    from server.tracking_stats import MIN_RUNS
    from tests.server.test_tracking_stats import described_runs

    store = settings.state_dir / "mlflow.db"
    client = MlflowTracking(settings.mlflow_uri, settings.state_dir / "mlartifacts").client
    experiment = client.create_experiment("demo-bank/credit-default")
    for _ in range(MIN_RUNS):  # as a store written before statistics were kept: no sqlite_stat1
        client.set_terminated(client.create_run(experiment).info.run_id)
    with sqlite3.connect(store) as db:
        db.execute("DROP TABLE IF EXISTS sqlite_stat1")
    async with stdio(workspace) as mcp:
        await mcp.list_tools()
        with anyio.fail_after(START_TIMEOUT_S):
            while described_runs(store) is None:
                await anyio.sleep(0.1)
    assert described_runs(store) == MIN_RUNS


def _jsonrpc(*messages: dict) -> bytes:
    import json  # noqa: PLC0415

    return b"".join(json.dumps(m).encode() + b"\n" for m in messages)


def test_stdio_names_its_version_and_mlflow_prints_nothing_even_under_an_agent(workspace: Path) -> None:
    """A raw stdio exchange with the environment a coding agent sets (CLAUDECODE=1): serverInfo
    carries mlgate's version, and MLflow (imported at start for reconciliation and by list_runs)
    prints no hint on stderr."""
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    from importlib import metadata  # noqa: PLC0415

    env = {**os.environ, "CLAUDECODE": "1", "CODEX_THREAD_ID": "t"}
    env.pop("MLFLOW_DISABLE_AGENT_HINT", None)
    argv = [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace)]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_runs", "arguments": {}}}
    process.stdin.write(_jsonrpc(INITIALIZE, {"jsonrpc": "2.0", "method": "notifications/initialized"}, call))
    process.stdin.flush()
    answers = [json.loads(process.stdout.readline()) for _ in range(2)]
    process.stdin.close()
    process.wait(timeout=START_TIMEOUT_S)
    assert answers[0]["result"]["serverInfo"] == {**answers[0]["result"]["serverInfo"], "name": "mlgate", "version": metadata.version("mlgate")}
    assert answers[1]["id"] == 2 and "result" in answers[1]
    stderr = process.stderr.read().decode()
    assert "skill" not in stderr.lower() and "MLFLOW_DISABLE_AGENT_HINT" not in stderr, stderr


@pytest.mark.parametrize("http", [[], ["--http", "127.0.0.1:8765"]], ids=["stdio", "http"])
def test_serving_a_directory_mlgate_init_did_not_make_exits_2_with_what_to_do(tmp_path: Path, capsys, http: list[str]) -> None:
    assert main(["serve", "--workspace", str(tmp_path / "typo"), *http]) == 2
    assert "what to do: pass --workspace DIR of a workspace made by `mlgate init DIR`" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
