"""What a detached worker does with a vouched request (server/detached.py explains the design).

`Work.open` builds the worker's own ports from the server's settings, loaded from the same files
and environment (the request names where and their digest, never the settings themselves: a
tracking URI may carry a password), records `started` in the audit chain and takes over the run's
heartbeat. `run` checks the settings' digest, gathers the facts again, decides run_experiment's
rules again, checks that the pins are the ones decided, trains and reports exactly as a
non-detached call (tools/experiment_runner.train_and_finish), and returns the status the run ended
with. Progress goes to the run's tags, where get_run reads it. `close` records `ended` and gives
the run slot back (the owner file goes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import anyio

from policies import Principal, evaluate
from server.detached_vouch import EVENT_KIND, Refused, Vouched, ran_since
from server.ports import Ports, build_ports
from server.detached_runs import settings_digest
from server.settings import load_settings
from tools.base import CallContext
from tools.detached_view import PROGRESS_TAGS
from tools.errors import GovernanceError, PolicyDenied
from tools.experiment_runner import detach_pins, train_and_finish
from tools.run_experiment import SPEC, RunExperimentInput



class TagProgress:
    """Progress as run tags (done, total, message): what get_run shows of a detached run."""

    def __init__(self, tracking: Any, run_id: str) -> None:
        self._tracking, self._run_id = tracking, run_id

    async def report(self, done: float, total: float | None, message: str | None) -> None:
        values = dict(zip(PROGRESS_TAGS, (done, "" if total is None else total, message or ""), strict=True))
        await anyio.to_thread.run_sync(self._tracking.set_tags, self._run_id, values)


@dataclass
class Work:
    vouched: Vouched
    ports: Ports
    ctx: CallContext
    run_id: str
    reason: str | None = field(default=None)

    @classmethod
    def open(cls, vouched: Vouched) -> Work:
        """Raises IntegrityError when the audit chain cannot record `started` (nothing runs then)."""
        document = vouched.document
        where = document["settings"]
        ports = build_ports(load_settings(where["workspace"], state_dir=where["state_dir"], transport=where["transport"]))
        who, run_id = document["principal"], document["run_id"]
        # the launching call's lease names this run: its own slot, which training.concurrency must
        # not count as another run's, whether or not the call has released it yet
        ports.slots.own_run = run_id
        principal = Principal(who["name"], who["role"], who.get("credential"))
        ctx = CallContext(principal=principal, transport=str(document["transport"]), ports=ports, progress=TagProgress(ports.tracking, run_id).report)
        _claim_started(ports, document["call_id"], run_id, vouched.checked_bytes)
        heartbeat = getattr(ports.tracking, "heartbeat", None)
        if heartbeat is not None:
            heartbeat.add(run_id)
        return cls(vouched, ports, ctx, run_id)

    def _decide(self, request: RunExperimentInput) -> dict[str, Any]:
        """The facts, gathered and decided again. Raises GovernanceError when the rules deny now or
        the workspace changed since the call was decided."""
        if settings_digest(self.ports.settings) != self.vouched.document["settings"]["sha256"]:
            raise PolicyDenied("the server settings this worker loads are not the ones the call was decided with",
                               "start the server with its configuration in files and environment, then call run_experiment again", rule_id="detached.settings")  # fmt: skip
        self.ctx.config = self.ports.standards.policy_config()
        facts = SPEC.gather(request, self.ctx)
        verdict = evaluate(SPEC.rules, facts, self.ctx.config)
        if not verdict.allowed:
            decision = verdict.deciding
            raise PolicyDenied(decision.reason, decision.remediation, rule_id=decision.rule_id)
        if detach_pins(facts) != self.vouched.document["pins"]:
            raise PolicyDenied("the workspace changed between the call and the start of its run (config, features.py, dataset or commit)",
                               "call run_experiment again", rule_id="detached.unchanged")  # fmt: skip
        return facts

    async def run(self) -> str:
        """Train; the status the run ended with. Cancellation (SIGTERM) ends it KILLED and is raised."""
        try:
            request = RunExperimentInput.model_validate(self.vouched.document["arguments"])
            facts = await anyio.to_thread.run_sync(self._decide, request)
            experiment = (await anyio.to_thread.run_sync(self.ports.tracking.get_run, self.run_id))["experiment_id"]
        except BaseException as exc:
            return await self._refused(exc)
        self.ctx.audit_refs.update(run_id=self.run_id)
        try:
            await train_and_finish(self.ctx, experiment, self.run_id, facts, detached=True)
        except Exception as exc:  # noqa: BLE001 - train_and_finish ended the run FAILED; the record names the rule or the type
            self.reason = _reason(exc)
            return "FAILED"
        return "FINISHED"

    async def _refused(self, exc: BaseException) -> str:
        """End the run before training started: FAILED with the reason, or KILLED (then raised)."""
        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
        status, self.reason = ("KILLED", "cancelled through cancel_run") if cancelled else ("FAILED", _reason(exc))
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.ports.tracking.end_run, self.run_id, status, self.reason)
        if not isinstance(exc, Exception):
            raise exc
        return status

    def close(self, status: str) -> None:
        """Record how the run ended and give its slot back."""
        document = self.vouched.document
        record = {"kind": EVENT_KIND, "event": "ended", "call_id": document["call_id"], "run_id": self.run_id, "status": status}
        if status == "KILLED":
            self.reason = "cancelled through cancel_run"
        try:
            self.ports.audit.append({**record, **({"reason": self.reason} if self.reason else {})})
        finally:
            (self.ports.settings.state_dir / "detached" / f"{document['call_id']}.owner.json").unlink(missing_ok=True)
            self.ports.audit.close()


def _claim_started(ports: Ports, call_id: str, run_id: str, checked_bytes: int) -> None:
    """Chain `started` unless another worker did since this one's check (server/detached_vouch.py):
    the call's lock file is the agent's to remove, the chain's lock decides. Only the bytes appended
    since the check (`checked_bytes`) are searched under that lock. Raises Refused then."""
    started = {"kind": EVENT_KIND, "event": "started", "call_id": call_id, "run_id": run_id, "pid": os.getpid()}
    taken = lambda: ran_since(ports.settings.audit_path, call_id, checked_bytes)  # noqa: E731
    if ports.audit.append_unless(started, taken) is None:
        ports.audit.close()
        raise Refused("this call was already started: a detached request runs once")


def _reason(exc: BaseException) -> str:
    return f"{exc.rule_id}: {exc.reason}" if isinstance(exc, GovernanceError) else f"internal error ({type(exc).__name__})"
