"""What the sandbox of a launcher killed outright leaves behind, and how a later server ends it.

bwrap clones its sandbox (the inner bwrap, init of a new pid namespace) and lets it go on only after
writing --info-fd. An outer bwrap killed in between (--die-with-parent, when its launcher, a detached
worker or the server, is killed) leaves the inner one waiting for good on its eventfd, reparented to
pid 1 and deaf to SIGTERM as a namespace's init; no training child, hence no lifeline, exists yet.
Once the sandbox runs, it dies with its launcher (tests/server/test_sandbox_leftovers.py). A process
killed outright does nothing more, so the launcher records its sandbox before it waits on it, in the
run directory's logs/ (never mounted in the sandbox): itself, bwrap's pid (the sandbox's process group
and session: start_new_session) with its start time, then the namespace's init and inode from
--info-fd. The record goes once the launcher has killed every process of the run. Reconciling the run
of a dead launcher (server/detached_runs.py `settle`, server/tracking.py `reconcile_orphans` through
server/recovery.py) SIGKILLs what the record still names:

    group      members of bwrap's process group or session started no earlier than bwrap, unless a
               live process holds bwrap's pid with another start time (the pid was reused)
    namespace  members of the pid namespace while its init is the recorded process (same pid, start
               time and namespace): a namespace's inode is reused once it is gone
    token      unconfined (no namespace): processes started no earlier than the child that carry its
               environment token, which a setsid leaves in place

A record of another host or boot, or of a live launcher, is left alone. A starting server also sweeps
every run's records (`sweep_leftovers`): a run ended FAILED by a path that kills nothing keeps its own.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from server.liveness import ProcessIdentity, owner_is_alive, process_start_ticks
from server.sandbox_io import environ_entries, kill_pids, namespace_of, proc_stat

RECORD = "sandbox.json"
RUN_ID = re.compile(r"[0-9a-f]{32}")
TOKEN = re.compile(r"SANDBOX_RUN_TOKEN=[0-9a-f]{32}")  # server/sandbox.py RUN_TOKEN_VARIABLE, secrets.token_hex(16)
KILL_WAIT_S = 5.0
POLL_S = 0.02


def record_sandbox(logs: Path, group: int, token: bytes | None = None) -> None:
    """Name this launcher and its sandbox's process group (bwrap's pid, or the unconfined child's) in
    logs/RECORD, and the unconfined child's environment token."""
    launcher = ProcessIdentity.of(os.getpid())
    _write(logs / RECORD, {"launcher": launcher.tags(), "group": group, "group_started": _ticks(group), "token": token and token.decode()})


def record_namespace(logs: Path, init: int | None, namespace: int | None) -> None:
    """Add the sandbox's pid namespace and its init (a host pid, from --info-fd) once known."""
    document = _load(logs / RECORD)
    if document is not None and init and namespace:
        _write(logs / RECORD, {**document, "init": init, "init_started": _ticks(init), "pid_namespace": namespace})


def forget_sandbox(logs: Path) -> None:
    """Nothing of the sandbox is left: a stale record could name a reused pid."""
    (logs / RECORD).unlink(missing_ok=True)


def leftover_note(killed: int) -> str:
    """What a reconciliation's reason adds when it killed processes of a dead launcher's sandbox."""
    return f"; killed {killed} leftover sandbox process{'' if killed == 1 else 'es'}" if killed else ""


def kill_run_leftovers(runs_root: Path, run_id: str) -> int:
    """SIGKILL what the sandboxes of dead launchers left of run `run_id` (its stage directories under
    runs_root, server/rundirs.py); returns how many processes it killed. Records whose processes are
    all gone are removed."""
    if not RUN_ID.fullmatch(run_id):
        return 0
    return sum(kill_recorded(path) for path in sorted((runs_root / run_id).glob(f"*/logs/{RECORD}")))


def sweep_leftovers(runs_root: Path) -> list[dict[str, Any]]:
    """Kill what dead launchers' sandboxes left in any run, also one ended without that (run_experiment
    reconciles orphans too, before a starting server has); {run_id, stage, killed} per record that
    still named live processes."""
    found = []
    for path in sorted(runs_root.glob(f"*/*/logs/{RECORD}")) if runs_root.is_dir() else []:
        if killed := kill_recorded(path):
            found.append({"run_id": path.parents[2].name, "stage": path.parents[1].name, "killed": killed})
    return found


def kill_recorded(path: Path) -> int:
    """SIGKILL, for at most KILL_WAIT_S, the leftovers `path` names when its launcher is dead here."""
    document = _load(path)
    if document is None or not _launcher_dead({k: str(v) for k, v in document["launcher"].items()}):
        return 0
    killed: set[int] = set()
    deadline = time.monotonic() + KILL_WAIT_S
    while (members := leftovers(document)) and time.monotonic() < deadline:
        kill_pids(members)
        killed |= members
        time.sleep(POLL_S)
    if not members:
        path.unlink(missing_ok=True)
    return len(killed)


def leftovers(document: dict[str, Any]) -> set[int]:
    """Live processes of the recorded sandbox (the module docstring says which count)."""
    processes = _live_processes()
    members = _group_members(document, processes) | _namespace_members(document, processes) | _token_members(document, processes)
    return members - {os.getpid(), 1}


def _group_members(document: dict[str, Any], processes: dict[int, tuple[int, int, int]]) -> set[int]:
    group, started = document["group"], document.get("group_started")
    leader = _ticks(group)
    if started is None or (leader is not None and leader != started):
        return set()  # bwrap's pid belongs to another process now: so does any group of that number
    return {pid for pid, (pgid, sid, ticks) in processes.items() if group in (pgid, sid) and ticks >= started}


def _namespace_members(document: dict[str, Any], processes: dict[int, tuple[int, int, int]]) -> set[int]:
    init, namespace = document.get("init"), document.get("pid_namespace")
    link = f"pid:[{namespace}]"
    if not init or document.get("init_started") is None or _ticks(init) != document["init_started"] or namespace_of(init) != link:
        return set()
    return {pid for pid in processes if namespace_of(pid) == link}


def _token_members(document: dict[str, Any], processes: dict[int, tuple[int, int, int]]) -> set[int]:
    token, started = document.get("token"), document.get("group_started")
    if not isinstance(token, str) or not TOKEN.fullmatch(token) or started is None:
        return set()  # only the launcher's own random entry: never one most processes carry (PATH=...)
    entry = token.encode()
    return {pid for pid, (_, _, ticks) in processes.items() if ticks >= started and entry in environ_entries(pid)}


def _launcher_dead(tags: dict[str, str]) -> bool:
    """Dead on this host and boot: elsewhere its pids and start times mean nothing here."""
    here = ProcessIdentity.of(os.getpid())
    same_boot = tags.get("mlgate.server.host") == here.host and tags.get("mlgate.server.boot_id") == here.boot_id
    return same_boot and owner_is_alive(tags, here) is False


def _live_processes() -> dict[int, tuple[int, int, int]]:
    """{pid: (process group, session, start ticks)} of every process that is not a zombie."""
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        facts = proc_stat(name)
        if facts is not None and facts[0] not in "ZX":
            found[int(name)] = facts[1:]
    return found


def _ticks(pid: int) -> int | None:
    ticks = process_start_ticks(pid)
    return int(ticks) if ticks else None


def _load(path: Path) -> dict[str, Any] | None:
    """The record, None when absent or malformed (pids must be numbers above 1: 0 and -1 are not
    processes to os.kill)."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("launcher"), dict):
        return None
    pids, ticks = [document.get("group"), document.get("init")], [document.get("group_started"), document.get("init_started")]
    if type(pids[0]) is not int or not all(p is None or (type(p) is int and p > 1) for p in pids):
        return None
    return document if all(t is None or type(t) is int for t in ticks) else None


def _write(path: Path, document: dict[str, Any]) -> None:
    """Replace the record whole (a reader never sees half); no fsync: after a crash of the host its
    processes are gone and its boot id has changed."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(document, sort_keys=True))
    os.replace(temp, path)
