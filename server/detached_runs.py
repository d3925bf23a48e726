"""Detached runs, server side: launch a worker, count and reconcile live ones, cancel one.

`run_experiment(detach=true)` is decided, audited and started (its MLflow run created) by the
server as any call is; the training then runs in a worker process of its own (`python -m
server.detached`, server/detached.py) started in a new session, so it outlives the client's session
and the server process itself: a stdio server exits with its client, and an HTTP session ending
cancels only the calls still in flight. A thread of the server reaps the worker when it exits (a
worker that died without ending its run, killed by the OOM killer or SIGKILL, has its run settled
FAILED there and then, as `reconcile` would at the next server start) and publishes
`ResourceUpdated(mlgate://runs/<run_id>)` on the servers' subscriptions bus (clients of the
2026-07-28 protocol that `subscriptions/listen` to the run's URI learn that it ended).

What the worker executes is written to `<state_dir>/detached/<call_id>.json` and vouched for by a
`detached_run accepted` record in the audit chain (server/detached_vouch.py) naming the request's
SHA-256 and the allow decision of the call. `<call_id>.owner.json` names the worker process
(server/liveness.py identity); the worker removes it when it ends. Its MLflow run carries the same
identity as owner tags, so `reconcile_orphans` of any later server tells a live worker from a dead
one. A live worker holds a run slot (server/slots.py counts them); a dead one's run is ended FAILED
with a reason, audited, and its slot released (`reconcile`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from mcp.shared.subscriptions import ResourceUpdated

from server.acknowledgements import governed_config
from server.files import write_atomic
from server.liveness import ProcessIdentity, owner_is_alive
from server.sandbox_leftovers import kill_run_leftovers, leftover_note
from server.settings import PACKAGE_ROOT, Settings
from server.detached_vouch import CALL_ID, EVENT_KIND, Refused, events_of, request_sha256
from server.tracking import RUN_ID
from tools.detached_view import CALL_TAG
from tools.errors import GovernanceError, IntegrityError, NotFound

logger = logging.getLogger(__name__)
RUN_URI = "mlgate://runs/{run_id}"  # resources/runs.py
RUNS_DIR = "runs"  # the run directories under the state dir (server/ports.py RunDirs)
WORKER_MODULE = "server.detached"
POLL_S = 0.05


def settings_digest(settings: Settings) -> str:
    """SHA-256 of the governed settings (credential-bearing ones hashed, server/acknowledgements.py)
    but the local principal, whom the request names itself."""
    governed = {k: v for k, v in governed_config(settings).items() if k not in ("local_principal", "local_role")}
    return hashlib.sha256(request_bytes(governed)).hexdigest()


def settings_ref(settings: Settings) -> dict[str, str]:
    """How a worker finds the server's settings: where, and their digest; never the settings
    themselves (a tracking URI may carry a password). The worker loads them from the same files
    and environment and refuses when the digest differs."""
    return {"workspace": str(settings.workspace), "state_dir": str(settings.state_dir), "transport": settings.transport, "sha256": settings_digest(settings)}


def request_bytes(document: Mapping[str, Any]) -> bytes:
    """The request file's bytes: canonical JSON, so its SHA-256 is stable."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


class DetachedRuns:
    """The detached runs of one workspace (state dir). Blocking; async callers use a thread."""

    def __init__(self, settings: Settings, audit: Any, tracking: Any, events: Any = None) -> None:
        self.settings = settings
        self.root = settings.state_dir / "detached"
        self._audit, self._tracking = audit, tracking
        self._events = events  # the servers' subscriptions bus: ResourceUpdated when a worker exits
        self._cancelling: set[str] = set()  # call ids cancel() settles itself (KILLED, not FAILED)
        self._settling = threading.Lock()  # one settle() at a time: a run is ended and recorded once

    # --- paths ------------------------------------------------------------------------------------

    def request_path(self, call_id: str) -> Path:
        return self.root / f"{call_id}.json"

    def owner_path(self, call_id: str) -> Path:
        return self.root / f"{call_id}.owner.json"

    def log_path(self, call_id: str) -> Path:
        return self.root / f"{call_id}.log"

    # --- launching --------------------------------------------------------------------------------

    def launch(self, *, run_id: str, principal: Any, transport: str, arguments: Mapping[str, Any], decision: Mapping[str, Any], pins: Mapping[str, Any]) -> str:
        """Record the request, chain its `accepted` record, start the worker; returns the call id.
        Raises IntegrityError when the chain cannot record (nothing is started then)."""
        call_id = secrets.token_hex(16)
        who = {"name": principal.name, "role": principal.role, "credential": getattr(principal, "credential", None)}
        document = {"call_id": call_id, "run_id": run_id, "principal": who, "transport": transport, "arguments": dict(arguments),
                    "pins": dict(pins), "settings": settings_ref(self.settings)}  # fmt: skip
        data = request_bytes(document)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.request_path(call_id), data, mode=0o600)
        self._audit.append({"kind": EVENT_KIND, "event": "accepted", "call_id": call_id, "run_id": run_id, "request_sha256": request_sha256(data),
                            "args_hash": decision["args_hash"], "decision_seq": decision["seq"], "decision_hash": decision["hash"],
                            "principal": principal.name, "role": principal.role, "transport": transport})  # fmt: skip
        self._tracking.set_tags(run_id, {CALL_TAG: call_id})
        process = self._spawn(call_id)
        identity = ProcessIdentity.of(process.pid)
        write_atomic(self.owner_path(call_id), request_bytes({"call_id": call_id, "run_id": run_id, "tags": identity.tags()}), mode=0o600)
        self._tracking.set_tags(run_id, identity.tags())  # the worker owns the run from now on
        heartbeat = getattr(self._tracking, "heartbeat", None)
        if heartbeat is not None:
            heartbeat.discard(run_id)  # ... and keeps its heartbeat fresh
        threading.Thread(target=self._reap, args=(process, run_id, call_id, _loop_token()), name=f"mlgate-detached-{call_id[:8]}", daemon=True).start()
        return call_id

    def _spawn(self, call_id: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", WORKER_MODULE, "--state-dir", str(self.settings.state_dir), call_id]
        with self.log_path(call_id).open("ab") as log:
            # A new session: the client's terminal, the server's exit and its signals do not reach it.
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=PACKAGE_ROOT, start_new_session=True, close_fds=True)

    def _reap(self, process: subprocess.Popen, run_id: str, call_id: str, token: Any) -> None:
        process.wait()
        try:
            self._settle_exited(call_id)
        except Exception:  # noqa: BLE001 - a thread of its own: the next server's reconcile settles it then
            logger.exception("detached run %s could not be settled as its worker exited", run_id)
        if self._events is not None and token is not None:
            # the server's loop may be gone (stdio client left) or shutting down: nobody listens then;
            # a loop that is closing cancels the call, which is not an Exception
            with suppress(Exception, asyncio.CancelledError):
                anyio.from_thread.run(self._events.publish, ResourceUpdated(uri=RUN_URI.format(run_id=run_id)), token=token)

    def _settle_exited(self, call_id: str) -> None:
        """A worker that exited with its owner file still there never ended its run: settle it
        FAILED now (unless cancel() is settling it KILLED), not at the next server start."""
        if call_id in self._cancelling:
            return
        owner = self._owner(call_id)
        if owner is not None and self._alive(owner) is False:
            self._settle_dead(owner)

    # --- the live ones ----------------------------------------------------------------------------

    def owners(self) -> list[dict[str, Any]]:
        """Every owner file: `{call_id, run_id, tags}` (unreadable ones skipped)."""
        found = []
        for path in sorted(self.root.glob("*.owner.json")) if self.root.is_dir() else []:
            try:
                owner = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            if _well_formed(owner):
                found.append(owner)
        return found

    def _owner(self, call_id: str) -> dict[str, Any] | None:
        return next((o for o in self.owners() if o["call_id"] == call_id), None)

    def _chained(self, owner: Mapping[str, Any]) -> str | None:
        """Why the chain does not vouch for an owner file (None when it does): the chain must hold
        the `accepted` record of its call for its run, and the pid the worker chained when it
        `started`, if it has, must be the file's. The file is the same OS user's to write (stdio):
        on its own it names no run to end and no process to signal."""
        try:
            events = events_of(self.settings.audit_path, owner["call_id"])
        except Refused as refused:
            return refused.reason
        if not any(e.get("event") == "accepted" and e.get("run_id") == owner["run_id"] for e in events):
            return f"the audit chain never accepted call {owner['call_id']} for run {owner['run_id']}"
        started = [str(e.get("pid")) for e in events if e.get("event") == "started"]
        if started and started[0] != owner["tags"].get("mlgate.server.pid"):
            return f"the worker of call {owner['call_id']} chained pid {started[0]}, not the owner file's"
        return None

    def _alive(self, owner: Mapping[str, Any]) -> bool | None:
        return owner_is_alive(owner["tags"], ProcessIdentity.of(os.getpid()))

    def worker_elsewhere(self, call_id: str) -> bool:
        """Whether the worker of `call_id` lives on another host (its liveness cannot be read here)."""
        owner = self._owner(call_id)
        return owner is not None and self._alive(owner) is None

    def live_count(self) -> int:
        """Detached runs whose worker is alive (a worker never counts itself)."""
        me = str(os.getpid())
        return sum(1 for o in self.owners() if self._alive(o) is not False and o["tags"].get("mlgate.server.pid") != me)

    def reconcile(self, into: list | None = None) -> list[str]:
        """End FAILED, with a reason, each RUNNING detached run whose worker is dead; its slot is
        released. Returns the reconciled run ids (appended to `into` one by one)."""
        reconciled = [] if into is None else into
        for owner in self.owners():
            if self._alive(owner) is False and self._settle_dead(owner):
                reconciled.append(owner["run_id"])
        return reconciled

    def _settle_dead(self, owner: Mapping[str, Any]) -> bool:
        """settle() one dead worker's run; an owner file the chain does not vouch for, or one that
        cannot be settled, is logged and left for the operator: it must not stop the others'."""
        unvouched = self._chained(owner)
        if unvouched is not None:
            logger.warning("detached owner file %s left as it is: %s", self.owner_path(owner["call_id"]).name, unvouched)
            return False
        try:
            return self.settle(owner, "FAILED", f"its detached worker (pid {owner['tags'].get('mlgate.server.pid')}) exited without ending the run")
        except (GovernanceError, OSError) as exc:
            logger.warning("detached run %s could not be reconciled: %s", owner["run_id"], exc)
            return False

    def settle(self, owner: Mapping[str, Any], status: str, reason: str) -> bool:
        """End the run of a dead worker (if still RUNNING), audit it, remove its owner file; what its
        sandboxes left is killed first (server/sandbox_leftovers.py). Returns whether the run was
        still RUNNING."""
        with self._settling:
            return self._settle(owner, status, reason)

    def _settle(self, owner: Mapping[str, Any], status: str, reason: str) -> bool:
        run_id, call_id = str(owner["run_id"]), str(owner["call_id"])
        killed = kill_run_leftovers(self.settings.state_dir / RUNS_DIR, run_id)
        reason += leftover_note(killed)
        try:
            running = self._tracking.get_run(run_id)["status"] == "RUNNING"
        except NotFound:
            running = False  # the store no longer holds the run (deleted, or another tracking_uri): nothing to end
        if running:
            self._tracking.end_run(run_id, status, f"{reason}; reconciled by pid {os.getpid()}")
            self._audit.append({"kind": EVENT_KIND, "event": "reconciled", "call_id": call_id, "run_id": run_id, "status": status, "reason": reason,
                                "leftover_processes": killed})  # fmt: skip
        self.owner_path(call_id).unlink(missing_ok=True)
        return running

    # --- cancelling -------------------------------------------------------------------------------

    def cancel(self, call_id: str, grace_s: float) -> str:
        """Stop the worker of `call_id` (SIGTERM: it cancels training, the sandbox kills the child,
        the run ends KILLED; SIGKILL to its session after `grace_s`) and wait until the run is
        ended. Returns how it went: "cancelled", "killed", "not_running", "stopping" (the worker
        outlived SIGKILL by `grace_s`: its run is left RUNNING) or "elsewhere" (a worker on another
        host: untouched). Raises ValueError for a malformed call id."""
        if not CALL_ID.match(call_id):
            raise ValueError("malformed call id")
        self._cancelling.add(call_id)
        try:
            return self._cancel(call_id, grace_s)
        finally:
            self._cancelling.discard(call_id)

    def _cancel(self, call_id: str, grace_s: float) -> str:
        owner = self._owner(call_id)
        alive = None if owner is None else self._alive(owner)
        if owner is not None and alive is None:
            return "elsewhere"  # a worker of another host (replica): only its own server can signal it
        unvouched = None if owner is None else self._chained(owner)
        if unvouched is None and alive:
            unvouched = _not_the_worker(owner)
        if unvouched is not None:
            raise IntegrityError(f"the owner file of this run's worker is not what the audit chain records ({unvouched}); nothing was signalled",
                                 "an operator should inspect <state_dir>/detached/ (the file may have been edited); the run is left as it is",
                                 rule_id="detached.owner_vouched")  # fmt: skip
        if owner is None or alive is False:
            if owner is not None:
                self.settle(owner, "KILLED", "cancelled through cancel_run; its detached worker had already exited")
            return "not_running"
        pid = int(owner["tags"]["mlgate.server.pid"])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._wait_dead(owner, grace_s):
            # a worker killed before it caught SIGTERM (it was still starting) left its run RUNNING
            self.settle(owner, "KILLED", "cancelled through cancel_run before its detached worker started training")
            return "cancelled"
        _kill_session(pid)
        if not self._wait_dead(owner, grace_s):
            return "stopping"  # settling now would end the run under a worker that may still write it
        self.settle(owner, "KILLED", "cancelled through cancel_run; its detached worker did not stop in time and was killed")
        return "killed"

    def _wait_dead(self, owner: Mapping[str, Any], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._alive(owner) is True:
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        return True


def _well_formed(owner: Any) -> bool:
    """An owner file as launch() writes it: a call id, a run id and string tags."""
    if not isinstance(owner, dict) or not isinstance(owner.get("tags"), dict):
        return False
    ids = CALL_ID.match(str(owner.get("call_id"))) and RUN_ID.match(str(owner.get("run_id")))
    return bool(ids) and all(isinstance(value, str) for value in owner["tags"].values())


def _not_the_worker(owner: Mapping[str, Any]) -> str | None:
    """Why the live process the owner file names is not this call's worker (`python -m
    server.detached ... CALL_ID`), None when it is, is gone, or /proc cannot tell."""
    pid = owner["tags"].get("mlgate.server.pid", "")
    try:
        argv = Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if WORKER_MODULE.encode() in argv and owner["call_id"].encode() in argv:
        return None
    return f"pid {pid} is not a detached worker of call {owner['call_id']}"


def _loop_token() -> Any:
    """The event loop of the server that launches (launch runs in one of its worker threads); None
    when called outside one."""
    try:
        return anyio.from_thread.run_sync(anyio.lowlevel.current_token)
    except RuntimeError:
        return None


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the worker leads its own session and group
    except ProcessLookupError:
        pass
