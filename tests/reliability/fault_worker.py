"""A process that meets a real storage fault while serving governed calls, run inside its own mount
namespace (`unshare --mount`) so that its mounts vanish with it:

    unshare --mount --propagation private python -m tests.reliability.fault_worker MODE WORKSPACE

disk_full   the state dir is a small tmpfs; after a first call works, a filler takes its last byte
read_only   the state dir is bind-mounted onto itself and remounted read-only, then `mlgate serve`
            starts (the kernel refuses to make a mount read-only while files on it are open for
            writing, so a running server cannot meet this fault; a starting one can)

It prints one JSON document: every call's answer under the fault, then, with the fault lifted (the
filler removed, the mount made writable again) and the chain reopened as a restarted server would,
whether the chain verifies and which temporary files were left behind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client

from server.app import build_server
from server.audit import AuditChain, verify
from server.ports import build_ports
from server.settings import Settings, load_settings
from tests.reliability.calls import proposal

TMPFS_SIZE = "8m"
FILLER = ".filler"
# Answered under the fault (load_dataset's hash comes from argv): the first few may still fit in
# the slack of a file's last page; the rest must be refused.
CALLS: list[tuple[str, dict[str, Any]]] = [("list_runs", {}), proposal(5, True), proposal(6, False), ("list_runs", {}), ("list_runs", {})]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def tmpfs_state_dir(state: Path) -> None:
    """Move the state dir's files onto a small tmpfs mounted at the same path."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "state"
        shutil.copytree(state, copy, symlinks=True)
        mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(state))
        shutil.copytree(copy, state, symlinks=True, dirs_exist_ok=True)


def fill(state: Path) -> None:
    """Take every free byte of the state dir's filesystem (unbuffered: nothing is left to flush)."""
    with (state / FILLER).open("ab", buffering=0) as filler:
        for block in (65536, 4096, 1):
            try:
                while True:
                    filler.write(b"\0" * block)
            except OSError:
                pass


def start_disk_full(state: Path) -> None:
    tmpfs_state_dir(state)


def start_read_only(state: Path) -> None:
    mount("--bind", str(state), str(state))
    mount("-o", "remount,bind,ro", str(state))


def lift(mode: str, state: Path) -> None:
    if mode == "disk_full":
        (state / FILLER).unlink(missing_ok=True)
    else:
        mount("-o", "remount,bind,rw", str(state))


def answer(result: Any) -> dict[str, Any]:
    payload = result.structured_content or {}
    text = " ".join(getattr(block, "text", "") for block in (result.content or []))
    return {"is_error": bool(result.is_error), "payload": payload, "text": text}


async def serve_on_a_full_disk(settings: Settings, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    ports = build_ports(settings)
    answers = []
    try:
        async with Client(build_server(settings, ports)) as client:
            warm = await client.call_tool("list_runs", {})  # the store exists and works before the fault
            answers.append({"tool": "list_runs(before)", **answer(warm)})
            fill(settings.state_dir)
            for tool, arguments in calls:
                answers.append({"tool": tool, **answer(await client.call_tool(tool, arguments))})
    finally:
        try:
            ports.audit.close()
        except Exception as exc:  # noqa: BLE001 - a chain that cannot sync under the fault is expected here
            answers.append({"tool": "close", "error": type(exc).__name__})
    return answers


def leftovers(root: Path) -> list[str]:
    """Temporary files a write left behind (server/files.py names them .tmp-*)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") and p.is_file())


def start_server(workspace: Path) -> dict[str, Any]:
    """`mlgate serve` (stdio) as an agent's client would spawn it; its exit code and stderr."""
    argv = [sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
    return {"tool": "serve", "returncode": done.returncode, "stderr": done.stderr.decode(errors="replace")[-4000:]}


def main(mode: str, workspace: Path, extra: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    settings = load_settings(workspace, transport="memory")
    state = settings.state_dir
    if mode == "disk_full":
        start_disk_full(state)
        answers = asyncio.run(serve_on_a_full_disk(settings, CALLS + extra))
    else:
        start_read_only(state)
        answers = [start_server(workspace)]
    lift(mode, state)
    AuditChain(settings.audit_path).close()  # a restart: opens the chain, quarantining a torn tail
    report = verify(settings.audit_path)
    return {"answers": answers, "verified": report.ok, "summary": report.summary(), "leftovers": sorted(set(leftovers(workspace)))}


if __name__ == "__main__":
    chosen, where = sys.argv[1], Path(sys.argv[2])
    more = [("load_dataset", {"content_hash": h}) for h in sys.argv[3:]]
    print(json.dumps(main(chosen, where, more), default=str))
