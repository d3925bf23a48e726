"""Hostile config files in the working tree (DESIGN §9: an agent with its own shell writes any file
of the workspace): the server's own writes of configs/*.yaml never parse it with anything but the
hardened loader, so a file built to exhaust a YAML parser costs a proposal nothing; and a FIFO put
in its place is refused at once instead of freezing the server on an open() that waits for a writer."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitTimeout
from pathlib import Path
from typing import Any

import anyio

import pytest
from mcp import Client

from server.app import build_server
from server.roundtrip_yaml import render_over
from server.safe_yaml import load_document
from server.settings import Settings, policy_limits

pytestmark = pytest.mark.anyio

LIMITS = policy_limits()["documents"]
REASONING = {
    "hypothesis_category": "hyperparameter_tuning",
    "change_description": "Deeper trees to capture interactions between income and debt",
    "expected_effect": "roc_auc improves by about one point on the validation folds",
}
# Nested far beyond the document depth cap (and Python's recursion limit), well under its byte cap.
DEEP_MAPPING = "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"
DEEP_LIST = "x: " + "[" * 20000 + "]" * 20000 + "\n"


@pytest.mark.parametrize("original", [DEEP_MAPPING, DEEP_LIST], ids=["mapping", "list"])
def test_a_current_file_nested_past_the_depth_cap_gets_the_plain_rendering_at_once(original: str) -> None:
    started = time.monotonic()
    text = render_over(original.encode(), REASONING, LIMITS, header="# Why.\n")
    assert text.startswith("# Why.\n") and load_document(text, LIMITS) == REASONING
    assert time.monotonic() - started < 3.0  # the round-trip parser never reads the hostile text


async def test_a_deeply_nested_reasoning_file_in_the_working_tree_does_not_break_proposals(settings: Settings, workspace: Path) -> None:
    (workspace / "configs/reasoning.yaml").write_text(DEEP_MAPPING)
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("propose_config_change", {"changes": {"model.params.max_depth": 6}, "reasoning": REASONING})
    content = result.structured_content
    assert content["decision"] == "allow" and content["changed"] is True, content
    assert load_document((workspace / "configs/reasoning.yaml").read_bytes(), LIMITS)["change_description"] == REASONING["change_description"]
    assert load_document((workspace / "configs/experiment.yaml").read_bytes(), LIMITS)["model"]["params"]["max_depth"] == 6


def _propose_in_own_loop(settings: Settings) -> Any:
    async def call() -> Any:
        async with Client(build_server(settings)) as client:
            return await client.call_tool("propose_config_change", {"changes": {"model.params.max_depth": 6}, "reasoning": REASONING, "dry_run": True})

    return anyio.run(call)


def test_a_fifo_in_place_of_experiment_yaml_is_refused_at_once_not_waited_on(settings: Settings, workspace: Path) -> None:
    target = workspace / "configs/experiment.yaml"
    target.unlink()
    os.mkfifo(target)
    # The call runs in a thread of its own: a blocked open() would freeze its event loop, not the test's.
    pool = ThreadPoolExecutor(max_workers=1)
    pending = pool.submit(_propose_in_own_loop, settings)
    try:
        result = pending.result(timeout=10.0)
    except WaitTimeout:
        os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))  # let the blocked reader see end of file
        pytest.fail("propose_config_change was still waiting on the FIFO after 10 s")
    finally:
        pool.shutdown(wait=True)
    content = result.structured_content
    assert result.is_error and content["rule_id"] == "integrity.config_path" and "experiment.yaml" in content["reason"], content


def test_the_changed_since_read_check_refuses_a_fifo_at_once_under_the_configs_lock(settings: Settings, workspace: Path) -> None:
    from server.approvals import ConfigFiles
    from tools.errors import IntegrityError

    configs = ConfigFiles(workspace, settings.state_dir / "configs.lock")
    target = workspace / "configs/experiment.yaml"
    digest = configs.sha256("configs/experiment.yaml")
    target.unlink()
    os.mkfifo(target)  # swapped in after the proposal read the file, before its write
    pool = ThreadPoolExecutor(max_workers=1)
    pending = pool.submit(configs.write, {"configs/experiment.yaml": "x: 1\n"}, expected={"configs/experiment.yaml": digest})
    try:
        with pytest.raises(IntegrityError) as refused:
            pending.result(timeout=10.0)
    except WaitTimeout:
        os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the write was still waiting on the FIFO after 10 s")
    finally:
        pool.shutdown(wait=True)
    assert refused.value.rule_id == "integrity.config_path" and "experiment.yaml" in refused.value.reason
    assert target.is_fifo()  # nothing written over it
