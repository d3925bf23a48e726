"""A process the crash-loop test kills with SIGKILL at random points: it does one kind of governed
work in a loop, prints `begin <n>` before each unit and `ack <id>` after each unit the code has
acknowledged (returned from). The governed modes serve the calls as `mlgate serve` does (ports,
the enforcement point, an MCP client in memory):

    python -m tests.reliability.crash_worker audit WORKSPACE TAG       audit appends
    python -m tests.reliability.crash_worker import WORKSPACE TAG      dataset imports
    python -m tests.reliability.crash_worker run WORKSPACE TAG         run_experiment (training in bwrap)
    python -m tests.reliability.crash_worker promotion WORKSPACE TAG   promote (register + alias) of a clone of the lab run
    python -m tests.reliability.crash_worker approval WORKSPACE TAG    propose a protected change, approve it (mlgate approvals approve)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from policies import Principal
from server.audit import AuditChain
from server.settings import load_settings

OPERATOR = Principal("crash-operator", "operator", "crash-operator:000000000000")
RUN_REASONING = {"hypothesis_category": "baseline", "change_description": "Baseline on the governed credit data.", "expected_effect": "A reference roc_auc for later changes."}
APPROVER_TOKEN_FILE = "crash-approver.token"  # beside the workspace: the approver's own shell


def say(word: str, unit: str) -> None:
    sys.stdout.write(f"{word} {unit}\n")
    sys.stdout.flush()


def ack(unit: str) -> None:
    say("ack", unit)


def audit_loop(workspace: Path, tag: str) -> None:
    chain = AuditChain(load_settings(workspace).audit_path)
    for n in itertools.count():
        chain.append({"kind": "outcome", "tool": "crash_loop", "status": "ok", "unit": f"{tag}-{n}", "padding": "x" * (n % 7) * 300})
        ack(f"{tag}-{n}")


def import_loop(workspace: Path, tag: str) -> None:
    from server.cas_import import import_dataset  # noqa: PLC0415
    from server.commands.data import store_for  # noqa: PLC0415
    from server.demo_data import credit_frame  # noqa: PLC0415

    store = store_for(workspace)
    chain = AuditChain(load_settings(workspace).audit_path)
    with tempfile.TemporaryDirectory() as scratch:
        for n in itertools.count():
            source = Path(scratch) / f"part-{n}.csv"
            credit_frame(rows=40, seed=abs(hash((tag, n))) % 10_000).to_csv(source, index=False)
            imported = import_dataset(store, store.registry, chain, [source], OPERATOR)
            ack(imported.added.content_hash)


async def governed_loop(workspace: Path, next_call: Any, settings: Any = None) -> None:
    """Serve in memory as `mlgate serve` does and make `next_call(n, ports)` -> (tool, arguments)
    calls forever; ack the unit each successful call names (run_id, version, approval id)."""
    from mcp import Client  # noqa: PLC0415

    from server.app import build_server  # noqa: PLC0415
    from server.ports import build_ports  # noqa: PLC0415

    settings = settings or load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    async with Client(build_server(settings, ports)) as client:
        for n in itertools.count():
            tool, arguments = next_call(n, ports)
            say("begin", str(n))
            result = await client.call_tool(tool, arguments)
            payload = result.structured_content or {}
            if result.is_error:
                raise SystemExit(f"{tool} refused: {payload.get('rule_id')}: {payload.get('reason')}")
            ack(str(payload.get("run_id") if tool == "run_experiment" else payload.get("version") or payload.get("approval_id")))


def run_loop(workspace: Path, tag: str) -> None:
    asyncio.run(governed_loop(workspace, lambda n, ports: ("run_experiment", {"reasoning": RUN_REASONING})))


def promotion_loop(workspace: Path, tag: str) -> None:
    """Each unit: a clone of the lab's promotable run (tests/tools/promotion_lab.py), promoted to
    candidate: a new version registered, the alias moved, the old candidate's stage changed."""
    from tests.reliability.crash_lab import promotable_clone  # noqa: PLC0415

    asyncio.run(governed_loop(workspace, lambda n, ports: ("promote", {"run_id": promotable_clone(workspace, ports), "alias": "candidate"})))


def approval_loop(workspace: Path, tag: str) -> None:
    """Each unit: the agent proposes a protected change (a pending approval opens), then a human
    approves it with `mlgate approvals approve ID` (the CLI, in this process, with its token)."""
    from server.cli import main  # noqa: PLC0415
    from server.credentials import TOKEN_ENV  # noqa: PLC0415
    from tests.mcp_calls import call_tool  # noqa: PLC0415
    from tests.reliability.crash_lab import protected_change  # noqa: PLC0415

    os.environ[TOKEN_ENV] = (workspace.parent / APPROVER_TOKEN_FILE).read_text().strip()
    settings = load_settings(workspace, transport="memory")

    for n in itertools.count():
        denied, result = asyncio.run(call_tool(settings, "propose_config_change", protected_change(f"{tag}-{n}")))
        if not denied or result.get("approval_status") != "pending":
            raise SystemExit(f"no pending approval: {result}")
        say("begin", result["approval_id"])
        if main(["approvals", "approve", result["approval_id"], "--workspace", str(workspace)]) != 0:
            raise SystemExit("approve failed")
        ack(result["approval_id"])


MODES = {"audit": audit_loop, "import": import_loop, "run": run_loop, "promotion": promotion_loop, "approval": approval_loop}

if __name__ == "__main__":
    mode, where, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    MODES[mode](where, tag)
