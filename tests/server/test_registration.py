"""What the governed server answers to list requests, over the in-memory MCP client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from policies import Principal
from server.audit.chain import AuditChain
from server.audit.records import read_tail
from server.app import build_server
from server.enforcement import Enforcer
from server.identity import Identifier
from server.registration import GovernedServer
from server.settings import Settings

pytestmark = pytest.mark.anyio

LISTS = ("list_tools", "list_resources", "list_resource_templates", "list_prompts")


@pytest.mark.parametrize("method", LISTS)
async def test_a_list_request_with_a_cursor_the_server_never_gave_is_invalid_params(settings: Settings, method: str) -> None:
    async with Client(build_server(settings)) as client:
        with pytest.raises(MCPError) as refused:
            await getattr(client, method)(cursor="eyJvZmZzZXQiOiAxMDB9")
    assert refused.value.error.code == INVALID_PARAMS and "list again without one" in refused.value.error.message


@pytest.mark.parametrize("method", LISTS)
async def test_every_list_comes_whole_in_one_page_without_a_next_cursor(settings: Settings, method: str) -> None:
    async with Client(build_server(settings)) as client:
        page = await getattr(client, method)()
    items = next(value for key, value in page if isinstance(value, list))
    assert items and page.next_cursor is None


class _UnwritableChain:
    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        raise OSError("disk full")


async def test_an_unknown_tool_the_audit_chain_cannot_record_is_an_internal_error_not_a_not_found() -> None:
    enforcer = Enforcer(_UnwritableChain(), lambda: {})
    server = GovernedServer("t", enforcer=enforcer, identifier=Identifier(Principal("tester", "agent"), "memory", None), read_ports=None)
    async with Client(server) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("no_such_tool", {})
    assert refused.value.error.code == INTERNAL_ERROR and "[audit.unavailable]" in refused.value.error.message


def _listening_server(chain: Any, role: str, readers: list[str], max_streams: int = 1024) -> GovernedServer:
    enforcer = Enforcer(chain, lambda: {}, read_config={"policy": {"reads": {"subscriptions": readers}}})
    return GovernedServer("t", enforcer=enforcer, identifier=Identifier(Principal("tester", role), "memory", None), read_ports=None,
                          max_listen_streams=max_streams)


async def test_a_listen_stream_is_a_recorded_read_for_a_role_the_reads_table_lists(tmp_path: Path) -> None:
    chain = AuditChain(tmp_path / "audit.jsonl")
    async with Client(_listening_server(chain, "agent", ["agent", "human"])) as client:
        async with client.listen(resource_subscriptions=["mlgate://runs/abc"]):
            pass
    assert [(r["resource"], r["decision"], r["status"], r["principal"]) for r in read_tail(chain.path, 10)] == [
        ("subscriptions/listen", "allow", "ok", "tester")]


async def test_a_listen_stream_is_refused_and_recorded_for_a_role_the_reads_table_leaves_out(tmp_path: Path) -> None:
    chain = AuditChain(tmp_path / "audit.jsonl")
    async with Client(_listening_server(chain, "agent", ["human", "operator"])) as client:
        with pytest.raises(MCPError) as refused:
            async with client.listen(resource_subscriptions=["mlgate://runs/abc"]):
                pass
    assert "resources.role" in refused.value.error.message
    assert [(r["resource"], r["decision"], r["status"]) for r in read_tail(chain.path, 10)] == [("subscriptions/listen", "deny", "denied")]


async def test_a_listen_stream_the_sdk_refuses_is_recorded_as_refused_not_ok(tmp_path: Path) -> None:
    """Allowed by the reads table, then refused by the listen handler (no stream may open here):
    the chain says the stream never opened."""
    chain = AuditChain(tmp_path / "audit.jsonl")
    async with Client(_listening_server(chain, "agent", ["agent"], max_streams=0)) as client:
        with pytest.raises(MCPError) as refused:
            async with client.listen(resource_subscriptions=["mlgate://runs/abc"]):
                pass
    assert "Subscription limit reached" in refused.value.error.message
    assert [(r["resource"], r["decision"], r["status"], r.get("error")) for r in read_tail(chain.path, 10)] == [
        ("subscriptions/listen", "allow", "error", "MCPError")]


async def test_a_listen_stream_the_audit_chain_cannot_record_never_opens() -> None:
    async with Client(_listening_server(_UnwritableChain(), "agent", ["agent"])) as client:
        with pytest.raises(MCPError) as refused:
            async with client.listen(resource_subscriptions=["mlgate://runs/abc"]):
                pass
    assert refused.value.error.code == INTERNAL_ERROR and "[audit.unavailable]" in refused.value.error.message
