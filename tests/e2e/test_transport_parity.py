"""The same policies on every transport, bit for bit.

Each denied call goes to one workspace over the in-memory client, stdio (a real `mlgate serve`
subprocess), streamable HTTP and SSE (a real uvicorn server with a bearer token). The structured
denials must be identical, and so must the audit records, except for who called, when, over which
transport, and the chain's own fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.audit import read_tail
from server.auth import TokenStore
from server.settings import Settings, load_settings
from server.workspace import init_workspace
from tests.e2e.transports import denied_calls, mlgate_http, sse, stdio, streamable_http

TRANSPORTS = ("memory", "stdio", "streamable-http", "sse")
# Who, when, how, and the chain's links: everything else in a record must match across transports.
VARYING_FIELDS = {"time", "seq", "hash", "prev", "transport", "principal", "credential"}
PROTECTED_CHANGE = {
    "changes": {"split.test_size": 0.5},
    "reasoning": {
        "hypothesis_category": "baseline",
        "change_description": "Use a larger held-out test set for the baseline.",
        "expected_effect": "Tighter confidence intervals on roc_auc.",
    },
    "dry_run": True,
}
EXTRA_DENIALS: dict[str, dict[str, Any]] = {"propose_config_change/protected_field": PROTECTED_CHANGE}
CALL_TIMEOUT_S = 120


def _cases(tool_names: set[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    cases = {f"{tool}/schema": (tool, args) for tool, args in denied_calls(tool_names)}
    cases.update({name: (name.split("/")[0], args) for name, args in EXTRA_DENIALS.items() if name.split("/")[0] in tool_names})
    return cases


async def _call_all(client: Client, cases: dict[str, tuple[str, dict[str, Any]]], audit: Path) -> dict[str, Any]:
    """Per case: the result and the audit records the call added."""
    observed = {}
    for name, (tool, arguments) in cases.items():
        before = len(read_tail(audit, 10_000))
        result = await client.call_tool(tool, arguments)
        observed[name] = (result, read_tail(audit, 10_000)[before:])
    return observed


async def _over_every_transport(workspace: Path, settings: Settings) -> tuple[dict, dict]:
    token = TokenStore(settings.state_dir).create("remote-agent", "agent")
    with anyio.fail_after(CALL_TIMEOUT_S):
        async with Client(build_server(settings)) as client:
            cases = _cases({tool.name for tool in (await client.list_tools()).tools})
            observed = {"memory": await _call_all(client, cases, settings.audit_path)}
        async with stdio(workspace, MLGATE_PRINCIPAL="local-agent", MLGATE_ROLE="agent") as client:
            observed["stdio"] = await _call_all(client, cases, settings.audit_path)
        with mlgate_http(settings) as url:
            for transport, connect in (("streamable-http", streamable_http), ("sse", sse)):
                async with connect(url, token) as client:
                    observed[transport] = await _call_all(client, cases, settings.audit_path)
    return cases, observed


@pytest.fixture(scope="module")
def everywhere(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Path, bytes]:
    workspace = init_workspace(tmp_path_factory.mktemp("parity") / "ws")
    settings = load_settings(workspace, transport="memory", local_principal="local-agent", local_role="agent")
    experiment = (workspace / "configs" / "experiment.yaml").read_bytes()
    cases, observed = anyio.run(_over_every_transport, workspace, settings)
    return cases, observed, workspace, experiment


def test_known_denials_are_available_to_compare(everywhere) -> None:
    cases = everywhere[0]
    assert "propose_config_change/protected_field" in cases and len(cases) >= 2


def test_every_transport_gives_the_same_structured_denial(everywhere) -> None:
    cases, observed, _, _ = everywhere
    for name in cases:
        reference, _ = observed["memory"][name]
        assert reference.is_error and reference.structured_content["decision"] == "deny", name
        assert {"rule_id", "reason", "remediation"} <= set(reference.structured_content), name
        for transport in TRANSPORTS[1:]:
            result, _ = observed[transport][name]
            assert result.is_error, (name, transport)
            assert result.structured_content == reference.structured_content, (name, transport)
            assert [c.text for c in result.content] == [c.text for c in reference.content], (name, transport)


def _comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VARYING_FIELDS} for r in records]


def test_every_transport_writes_the_same_audit_records(everywhere) -> None:
    cases, observed, _, _ = everywhere
    for name in cases:
        reference = _comparable(observed["memory"][name][1])
        assert reference and reference[0]["decision"] == "deny" and reference[0]["role"] == "agent", name
        for transport in TRANSPORTS[1:]:
            assert _comparable(observed[transport][name][1]) == reference, (name, transport)


def test_audit_records_name_the_transport_and_the_principal_of_each_call(everywhere) -> None:
    cases, observed, _, _ = everywhere
    expected = {"memory": "local-agent", "stdio": "local-agent", "streamable-http": "remote-agent", "sse": "remote-agent"}
    for transport, principal in expected.items():
        for name in cases:
            records = observed[transport][name][1]
            assert {(r["transport"], r["principal"]) for r in records} == {(transport, principal)}, (name, transport)


def test_denied_calls_changed_nothing_in_the_workspace(everywhere) -> None:
    _, _, workspace, experiment = everywhere
    assert (workspace / "configs" / "experiment.yaml").read_bytes() == experiment
