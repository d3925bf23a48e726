"""The detached-run worker: `python -m server.detached --state-dir DIR CALL_ID`.

Started by the server (server/detached_runs.py) in a new session, so it outlives the client's
session and the server process; it trains the run the server already created and ends it.

Why a process of its own and not a task of the server: a stdio server exits when its client goes,
and an agent client drops a call it stopped waiting for; a task inside the server would die with
either. One worker per run, started directly (no daemon, no queue, no double fork): the worker's
identity (pid, start ticks, boot id) in the run's owner tags is all a later server needs to tell a
live run from an orphan, and the audit chain's flock makes its records safe beside the server's.

Why it re-validates: an agent with a shell as the same user can start this module itself, with a
request file it wrote. So the worker executes only a request the audit chain vouches for
(server/detached_vouch.py: the `accepted` record of the call names the file's SHA-256 and the
allow decision), and only once (a `started` record, claimed under a lock). Then it gathers the
facts again and decides the run's rules again, and refuses when the workspace or the server's
settings changed between the call and the start (config, features.py, dataset or commit pins, or
the settings' digest, differ): it trains exactly what was decided. A refusal is audited (`refused`) and ends the run FAILED when the request was genuine.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio

from server.detached_vouch import CALL_ID, EVENT_KIND, Refused, Vouched, vouch
from server.redact import install_log_redaction

MAX_REQUEST_BYTES = 1 << 20
REFUSED_EXIT = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stop_requested: list[int] = []  # signals caught before the run's signal receiver took over


def _note_stop(signum: int, _frame: Any) -> None:
    """cancel_run may signal while the worker still starts (vouch, ports, MLflow imports take
    seconds): the default action would kill it with its run RUNNING. Noted, the run ends KILLED."""
    _stop_requested.append(signum)


def _read_request(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REQUEST_BYTES + 1)
    except OSError:
        raise Refused("no request file for this call id") from None
    if len(data) > MAX_REQUEST_BYTES:
        raise Refused("the request file is too large")
    return data


def _claim(root: Path, call_id: str) -> int:
    """An exclusive lock held for the worker's life: a second worker for the call is refused."""
    fd = os.open(root / f"{call_id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Refused("another worker is running this call") from None
    return fd


def _append(audit_path: Path, record: dict[str, Any]) -> None:
    from server.audit.chain import AuditChain  # noqa: PLC0415

    chain = AuditChain(audit_path)
    try:
        chain.append(record)
    finally:
        chain.close()


def _refuse(audit_path: Path, call_id: str, reason: str) -> int:
    print(f"mlgate detached worker: refused: {reason}", file=sys.stderr)
    with suppress(Exception):  # a chain that cannot record still refuses
        _append(audit_path, {"kind": EVENT_KIND, "event": "refused", "call_id": call_id if CALL_ID.match(call_id) else "", "reason": reason, "pid": os.getpid()})
    return REFUSED_EXIT


def main(argv: list[str] | None = None) -> int:
    for signum in STOP_SIGNALS:
        signal.signal(signum, _note_stop)
    install_log_redaction()  # its stderr is kept in <state_dir>/detached/<call_id>.log
    parser = argparse.ArgumentParser(prog="python -m server.detached")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("call_id")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    audit_path, root = state_dir / "audit.jsonl", state_dir / "detached"
    if not CALL_ID.match(args.call_id):
        return _refuse(audit_path, args.call_id, "a call id is 32 lowercase hex characters")
    try:
        data = _read_request(root / f"{args.call_id}.json")
        lock = _claim(root, args.call_id)
        vouched = vouch(audit_path, args.call_id, data)
    except Refused as refused:
        return _refuse(audit_path, args.call_id, refused.reason)
    try:
        return anyio.run(_execute, vouched)
    except Refused as refused:  # another worker claimed the call first (server/detached_work.py)
        return _refuse(audit_path, args.call_id, refused.reason)
    finally:
        os.close(lock)


async def _execute(vouched: Vouched) -> int:
    from server.detached_work import Work  # noqa: PLC0415 - heavy imports only for a vouched request

    work = await anyio.to_thread.run_sync(Work.open, vouched)
    status = "KILLED"  # unless run() returns: SIGTERM cancelled it
    # The signals stay caught until the run is ended: a second SIGTERM (a repeated cancel_run)
    # while the worker ends its run would otherwise kill it with the run still RUNNING.
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_signal, signals, group.cancel_scope)
            if _stop_requested:  # cancelled while it started: run() ends the run KILLED at once
                group.cancel_scope.cancel()
            status = await work.run()
            group.cancel_scope.cancel()
        await anyio.to_thread.run_sync(work.close, status)
    return 0 if status == "FINISHED" else 1


async def _cancel_on_signal(signals: Any, scope: anyio.CancelScope) -> None:
    """cancel_run sends SIGTERM: training is cancelled, the sandbox kills the child, the run ends KILLED."""
    async for _ in signals:
        scope.cancel()
        return


if __name__ == "__main__":
    sys.exit(main())
