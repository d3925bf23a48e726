"""Attacks on load_dataset by an agent with its own shell: a file whose name is not UTF-8 text
planted in a dataset directory. The call must be refused by the integrity rule with a reason that
names the problem in text every transport can send, never fail unexpectedly.

Real files written by hand in a real workspace, a real MCP client.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from server.settings import Settings
from tests.mcp_calls import call_tool
from tests.security.test_datasets import fabricate

pytestmark = pytest.mark.anyio


async def test_a_file_name_that_is_not_utf8_fails_verification_with_a_readable_reason(settings: Settings, workspace: Path) -> None:
    content_hash = fabricate(workspace, "credit.csv", b"a,b\n1,2\n")
    folder = workspace / "data" / "shadow" / content_hash
    folder.chmod(0o755)
    (Path(os.fsdecode(os.fsencode(folder) + b"/\xff\xfe.csv"))).write_bytes(b"x")
    is_error, result = await call_tool(settings, "load_dataset", {"content_hash": content_hash})
    assert is_error and result["rule_id"] == "data.integrity", result
    assert "not UTF-8" in result["reason"] and "\\xff\\xfe.csv" in result["reason"]
    json.dumps(result, ensure_ascii=False).encode()  # a reply every transport can send as UTF-8
