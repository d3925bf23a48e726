"""Credentials in URIs never reach results, logs, stdout/stderr or the audit chain (issue 8 item 9)."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from mcp import Client

from server.app import build_server
from server.ports import build_ports
from server.settings import load_settings
from tests.security.mlflow_rest import mlflow_rest_server
from tools.errors import GitRefused
from tools.redact import redact_text, redact_uri

PASSWORD = "Pw-9f3kQ"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://alice:Pw-9f3kQ@db.internal:5432/mlflow", "postgresql://REDACTED@db.internal:5432/mlflow"),
        ("http://alice:p@ss@127.0.0.1:5000/api?experiment=3&token=Pw-9f3kQ", "http://REDACTED@127.0.0.1:5000/api?experiment=3&token=REDACTED"),
        ("https://x-access-token:Pw-9f3kQ@github.com/o/r.git", "https://REDACTED@github.com/o/r.git"),
        ("s3://bucket/m.pkl?X-Amz-Date=20300101&X-Amz-Signature=Pw-9f3kQ", "s3://bucket/m.pkl?X-Amz-Date=20300101&X-Amz-Signature=REDACTED"),
        ("https://acct.blob.core.windows.net/c/b?sv=2021&sig=Pw-9f3kQ&api_key=Pw-9f3kQ", "https://acct.blob.core.windows.net/c/b?sv=2021&sig=REDACTED&api_key=REDACTED"),
        ("sqlite:////srv/ws/.mlgate/mlflow.db", "sqlite:////srv/ws/.mlgate/mlflow.db"),
    ],
)
def test_uri_userinfo_and_secret_query_values_are_redacted(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert redact_text(f"could not reach '{uri}': refused") == f"could not reach '{shown}': refused"


def test_an_error_naming_a_remote_with_credentials_carries_none() -> None:
    error = GitRefused(f"git push to https://bot:{PASSWORD}@git.example/o/r.git failed", f"check https://bot:{PASSWORD}@git.example")
    assert PASSWORD not in error.reason + error.remediation + str(error) + json.dumps(error.as_dict())


def test_log_lines_and_their_tracebacks_naming_a_uri_are_redacted(settings, capfd: pytest.CaptureFixture[str]) -> None:
    build_ports(settings)  # installs the redaction, as every server and CLI start does
    logger = logging.getLogger("mlflow.test")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        logger.warning("store %s unreachable", f"http://alice:{PASSWORD}@127.0.0.1:5000")
        try:
            raise ConnectionError(f"postgresql://alice:{PASSWORD}@db/mlflow refused")
        except ConnectionError:
            logger.exception("retrying")
    finally:
        logger.removeHandler(handler)
    captured = capfd.readouterr()
    assert "REDACTED@127.0.0.1:5000" in captured.err and "REDACTED@db/mlflow" in captured.err
    assert PASSWORD not in captured.err + captured.out


def test_an_mlgate_token_anywhere_in_text_is_replaced() -> None:
    token = "mlgate_" + "A1b2-C3d4_" * 4 + "xyz"
    assert redact_text(f"no run '{token}' here") == "no run 'mlgate_REDACTED' here"
    assert redact_text("mlgate_serve and mlgate_short stay") == "mlgate_serve and mlgate_short stay"


@pytest.mark.anyio
async def test_a_token_in_a_resource_uri_is_not_logged_and_a_long_uri_is_logged_cut(settings, caplog: pytest.LogCaptureFixture) -> None:
    ports = build_ports(settings)  # installs the redaction, as every server and CLI start does
    token = "mlgate_" + "Zz9-_" * 8 + "abc"
    caplog.set_level(logging.INFO, logger="mcp")
    try:
        async with Client(build_server(settings, ports)) as client:
            for uri in (f"mlgate://runs/{token}", "mlgate://runs/" + "x" * 100_000):
                with pytest.raises(Exception):
                    await client.read_resource(uri)
    finally:
        ports.audit.close()
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("mcp")]
    assert any("mlgate_REDACTED" in m for m in logged) and not any(token in m for m in logged), logged
    assert max(len(m) for m in logged) < 5_000 and any("more characters not logged" in m for m in logged)


@pytest.mark.anyio
async def test_tracking_uri_password_never_reaches_results_output_or_audit(workspace: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with mlflow_rest_server() as (host, store):
        settings = load_settings(workspace, transport="memory", tracking_uri=f"http://alice:{PASSWORD}@{host}")
        ports = build_ports(settings)
        experiment = ports.tracking.get_or_create_experiment("demo-bank/credit-default")
        run_id = ports.tracking.start_run(experiment, {"principal": "codex", "client_name": "demo-bank", "project_name": "credit-default"})
        ports.tracking.end_run(run_id, "FAILED", f"the store http://alice:{PASSWORD}@{host} timed out")
        async with Client(build_server(settings, ports)) as client:
            listed = await client.call_tool("list_runs", {})
            got = await client.call_tool("get_run", {"run_id": run_id})
        ports.audit.close()
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert f"Basic {basic}" in store.authorizations  # the credentials were really used
    assert PASSWORD not in json.dumps(store.runs)  # the end reason tag was redacted before it was stored
    assert run_id in str(listed.content) and not got.is_error
    for shown in (str(listed.content), str(got.content)):
        assert PASSWORD not in shown
    captured = capfd.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert PASSWORD not in settings.audit_path.read_text()
