"""The Ray executor: a run's training child runs on an existing Ray cluster instead of this host.

The server keeps everything it owns locally: the split, the labels of evaluation and test rows,
the MLflow run and every metric. A run's task carries exactly the four input files the local
sandbox would mount (spec.json, train.parquet with the training rows' labels, eval.parquet
WITHOUT labels, features.py); the worker runs the same launcher under bubblewrap on its node
(server/ray_worker.py), relays progress steps while the child runs and sends outputs/ back.
Here the progress is gated again through the run's own ProgressGate, the outputs are written into
the run directory's outputs/ and judged by server/sandbox_outcome.conclude, as a local child's are.

Isolation: the probe asks a worker how it would confine the child and which training and launcher
code it has (server.ray_worker.code_digest); a worker with other code counts as no worker, and a run
must find the probed confinement and code on the node that takes it, or the worker refuses it. Cancelling kills the task (politely,
then by force) and with it the child. The cluster's address names internal hosts: it is never
put into a message, and errors name only their type.

Deadlines: the worker kills its child at the run's timeout, but a worker that stops answering
(frozen node, SIGSTOP, partition) cannot. So the server waits for a worker to take the run, and
then for its answer, at most the run's timeout plus executor.ray.result_grace_seconds each; past
that it cancels the task (CANCEL_GRACE_S more) and the run ends as a timed-out local run does
(reason "timeout"). A frozen worker acts on the cancellation, killing its child, only once it
runs again; until then (or until its node leaves the cluster) Ray keeps its CPUs and GPUs held.
A probe waits connect_timeout_seconds and is cancelled when unanswered; joining the cluster is
bounded the same way (server/ray_connect.py).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import pyarrow.parquet as pq
import ray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server import ray_worker
from server.ray_connect import connect
from server.sandbox import required_inputs
from server.sandbox_io import MAX_OUTPUT_ENTRIES, RunPaths, prepare_run_dir
from server.sandbox_outcome import ChildExit, conclude
from server.sandbox_result import Mode, SandboxResult
from server.sandbox_vocabulary import ProgressGate, ProgressStep, plan_for, read_spec
from server.settings import RayExecutorSettings, SandboxLimits, Settings
from tools.errors import SandboxFailed
from training.contract import ProgressEvent

PROBE_TTL_S = 60.0
FAILED_PROBE_TTL_S = 5.0  # a cluster that was down is asked again soon
CANCEL_GRACE_S = 5.0
LABEL_COLUMN = "__label__"
logger = logging.getLogger(__name__)
ProgressCallback = Callable[[ProgressStep], Awaitable[None]]
_PROBE = ray.remote(ray_worker.probe)
_RUN = ray.remote(ray_worker.run_child)


class WorkerReport(BaseModel):
    """The worker's last message about a run that ran. Untrusted: bounded here, judged by conclude()."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["done"]
    mode: Literal["bwrap", "unconfined"]
    stage: Literal["features", "fit"] = "fit"  # the stage the run ended in: its files are what `files` holds
    exit_code: int | None = Field(ge=-255, le=255)
    timed_out: bool
    duration_s: float = Field(ge=0, le=10**7)
    orphans_killed: int = Field(ge=0, le=10**6)
    progress_rejected: int = Field(ge=0, le=10**9)
    outputs_overflow: bool = False  # the child was stopped for writing more than the file-size limit
    unsafe: list[str] = Field(max_length=MAX_OUTPUT_ENTRIES + 1)
    files: dict[str, bytes] = Field(max_length=MAX_OUTPUT_ENTRIES)
    stderr_tail: str = Field(max_length=16384)


class RayExecutor:
    """Runs training children as Ray tasks; `mode` is what a worker reports (cached PROBE_TTL_S,
    FAILED_PROBE_TTL_S when none answered)."""

    backend = "ray"

    def __init__(self, config: RayExecutorSettings, limits: SandboxLimits, allow_unconfined: bool = False) -> None:
        self.config, self.limits, self.allow_unconfined = config, limits, allow_unconfined
        self._probed: tuple[float, Mode] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RayExecutor:
        return cls(settings.executor.ray, settings.sandbox, allow_unconfined=settings.sandbox_mode == "unconfined")

    @property
    def mode(self) -> Mode:
        """"bwrap" or "unconfined" as a worker reports it; "unavailable" when no worker answers."""
        with self._lock:
            age = math.inf if self._probed is None else time.monotonic() - self._probed[0]
            if age > (FAILED_PROBE_TTL_S if self._probed and self._probed[1] == "unavailable" else PROBE_TTL_S):
                self._probed = (time.monotonic(), self._probe())
            return self._probed[1]

    def _probe(self) -> Mode:
        try:
            answer = self._ask_probe()
        except Exception as exc:  # noqa: BLE001 - any failure to reach a worker means no sandbox; the type says which
            logger.warning("no Ray worker answered the executor's probe (%s)", type(exc).__name__)
            return "unavailable"
        answer = answer if isinstance(answer, dict) else {}
        if answer.get("code") != ray_worker.code_digest():
            logger.warning("the Ray worker runs other mlgate training or launcher code than this server; refusing it")
            return "unavailable"
        mode = answer.get("mode")
        return mode if mode in ("bwrap", "unconfined") else "unavailable"

    def _ask_probe(self) -> Any:
        connect(self.config)
        task = _PROBE.options(num_cpus=0, max_retries=0, name="mlgate-probe")
        ref = task.remote(self.limits.model_dump(mode="json"), self.allow_unconfined)
        try:
            return ray.get(ref, timeout=self.config.connect_timeout_seconds)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)  # a probe nobody answered must not stay queued (or hung) in the cluster
            raise

    async def run(self, run_dir: Path, timeout_s: float | None = None, on_progress: ProgressCallback | None = None) -> SandboxResult:
        """As server.executors.Executor.run. Raises SandboxFailed when no worker can confine the
        child (sandbox.unavailable), the cluster fails the task or no worker takes it in time
        (sandbox.executor_error), or the run directory is malformed (sandbox.run_dir). A worker
        silent past the deadline ends the run as timed out (exit_code None: no worker reported)."""
        mode = await anyio.to_thread.run_sync(lambda: self.mode)
        if mode == "unavailable":
            raise _unavailable()
        paths = prepare_run_dir(run_dir, required_inputs(Path(run_dir) / "inputs"), sandbox_owns_outputs=False)
        spec = read_spec(paths.inputs / "spec.json")
        inputs = await anyio.to_thread.run_sync(pack_inputs, paths)
        timeout = min(timeout_s or math.inf, self.limits.wall_clock_seconds)
        gate, started = _CountingGate(ProgressGate(plan_for(spec))), time.monotonic()
        message = await self._answer(self._submit(inputs, mode, timeout), gate, on_progress, timeout)
        if message is None:
            silent = ChildExit(None, True, timeout, time.monotonic() - started, gate.delivered, gate.rejected)
            return conclude(mode, paths, silent, spec)
        report = _parse_report(message)
        if report.mode != mode:
            raise _unavailable("the Ray worker ran the child confined otherwise than the probed worker")
        if report.stage == "features":  # judged from built/ here too, as the local launcher judges a failed features stage
            paths = paths.of_failed_features_stage()
        await anyio.to_thread.run_sync(unpack_outputs, paths, report)
        ended = ChildExit(report.exit_code, report.timed_out, timeout, time.monotonic() - started, gate.delivered,
                          gate.rejected + report.progress_rejected, report.orphans_killed, unsafe_elsewhere=tuple(report.unsafe),
                          outputs_overflow=report.outputs_overflow)
        return conclude(report.mode, paths, ended, spec)

    async def _answer(self, stream: Any, gate: _CountingGate, on_progress: ProgressCallback | None, timeout: float) -> dict[str, Any] | None:
        """The worker's last message; None when the worker took the run but fell silent past its
        deadline. The task is cancelled on any other way out (a worker that answered cleans up)."""
        deadline = _Deadline(timeout + self.config.result_grace_seconds)
        try:
            with deadline.scope:
                return await _follow(stream, gate, on_progress, deadline)
        except BaseException:
            await _cancel(stream)
            raise
        await _cancel(stream)
        deadline.expired()
        return None

    def _submit(self, inputs: dict[str, bytes], mode: Mode, timeout: float) -> Any:
        task = _RUN.options(
            num_cpus=self.config.num_cpus, num_gpus=self.config.num_gpus, max_retries=0,
            num_returns="streaming", name="mlgate-training",
        )
        scratch = str(self.config.scratch_dir) if self.config.scratch_dir else None
        return task.remote(inputs, self.limits.model_dump(mode="json"), mode, timeout, scratch, ray_worker.code_digest())


class _Deadline:
    """The server's bound on a worker's silence: `limit` seconds for a worker to take the run, then
    `limit` seconds again from its "started" (the run's timeout plus the grace)."""

    def __init__(self, limit: float) -> None:
        self.limit, self.started = limit, False
        self.scope = anyio.CancelScope(deadline=anyio.current_time() + limit)

    def restart(self) -> None:
        self.started = True
        self.scope.deadline = anyio.current_time() + self.limit

    def expired(self) -> None:
        """Logs the silent worker for operators; raises SandboxFailed when no worker took the run."""
        if not self.started:
            raise SandboxFailed(f"no Ray worker took the run within {self.limit:g} s",
                                "An operator should check that the Ray cluster has the CPUs and GPUs a run asks for "
                                "(executor.ray.num_cpus, num_gpus) and is not full; run again.", rule_id="sandbox.executor_error")
        logger.warning("a Ray worker did not answer within the run's timeout plus result_grace_seconds; its task was cancelled")


class _CountingGate:
    def __init__(self, gate: ProgressGate) -> None:
        self.gate, self.delivered, self.rejected = gate, 0, 0

    def admit(self, message: dict[str, Any]) -> ProgressStep | None:
        try:
            step = self.gate.admit(ProgressEvent.model_validate({"step": message.get("step"), "metrics": message.get("metrics") or {}}))
        except ValidationError:
            step = None
        self.delivered, self.rejected = self.delivered + (step is not None), self.rejected + (step is None)
        return step


async def _follow(stream: Any, gate: _CountingGate, on_progress: ProgressCallback | None, deadline: _Deadline) -> dict[str, Any]:
    """Relays progress through the gate until the worker's last message, which is returned; the
    worker's "started" restarts the deadline. Raises SandboxFailed when the task fails or the
    worker refuses the run."""
    try:
        async for ref in stream:
            message = await ref
            kind = message.get("kind") if isinstance(message, dict) else None
            if kind == "started":
                deadline.restart()
            elif kind == "progress":
                await _pass_on(gate.admit(message), on_progress)
            else:
                return _final(message)
    except ray.exceptions.RayError as exc:
        logger.warning("the Ray task of a training run failed (%s)", type(exc).__name__)
        raise SandboxFailed("the Ray task running the training child failed", "An operator should check the Ray cluster; run again.",
                            rule_id="sandbox.executor_error") from None
    raise SandboxFailed("the Ray task ended without a result", "An operator should check the Ray cluster.", rule_id="sandbox.executor_error")


async def _pass_on(step: ProgressStep | None, on_progress: ProgressCallback | None) -> None:
    if step is not None and on_progress is not None:
        await on_progress(step)


def _final(message: Any) -> dict[str, Any]:
    kind = message.get("kind") if isinstance(message, dict) else None
    if kind == "done":
        return message
    if kind == "refused":
        raise _unavailable("the Ray worker that took the run cannot confine it as the probed worker could, or runs other code")
    rule = message.get("rule_id") if kind == "failed" else None
    if rule in ("sandbox.orphans", "sandbox.run_dir", "sandbox.unavailable"):
        raise SandboxFailed("the sandbox on the Ray worker failed", "An operator should check the worker node.", rule_id=rule)
    raise SandboxFailed("the Ray worker sent an unexpected answer", "An operator should check the Ray cluster.", rule_id="sandbox.executor_error")


def _parse_report(message: dict[str, Any]) -> WorkerReport:
    try:
        return WorkerReport.model_validate(message)
    except ValidationError:
        raise SandboxFailed("the Ray worker's report is malformed", "An operator should check the Ray cluster.",
                            rule_id="sandbox.executor_error") from None


async def _cancel(stream: Any) -> None:
    """Cancel politely (the worker's launcher kills the child), then by force after CANCEL_GRACE_S
    (the worker process dies; bubblewrap's --die-with-parent takes the child with it). Shielded:
    it also runs when the run itself is cancelled."""
    with anyio.CancelScope(shield=True):
        await _cancel_task(stream)


async def _cancel_task(stream: Any) -> None:
    try:
        ray.cancel(stream, force=False)
        with anyio.move_on_after(CANCEL_GRACE_S):
            await stream.completed()
            return
    except ray.exceptions.RayTaskError as exc:  # the worker ended the task: its launcher killed the child
        logger.info("cancelling a Ray training task: %s", type(exc).__name__)
        return
    except ray.exceptions.TaskCancelledError:
        # marked cancelled where it was queued; cancellation is best effort, and a task being
        # dispatched to a worker at that moment may start anyway: make sure no worker runs it
        pass
    except Exception as exc:  # noqa: BLE001 - a finished task cannot be cancelled; the child is gone either way
        logger.info("cancelling a Ray training task: %s", type(exc).__name__)
        return
    _force_cancel(stream)


def _force_cancel(stream: Any) -> None:
    try:
        ray.cancel(stream, force=True)  # kills a worker still running it; its bwrap child dies with it
    except Exception as exc:  # noqa: BLE001 - nothing runs it any more
        logger.info("force-cancelling a Ray training task: %s", type(exc).__name__)


def _unavailable(reason: str = "no Ray worker can confine the training child") -> SandboxFailed:
    return SandboxFailed(reason, "An operator should check the Ray cluster's address and that bubblewrap is installed on its nodes.",
                         rule_id="sandbox.unavailable")


def pack_inputs(paths: RunPaths) -> dict[str, bytes]:
    """The bytes of the inputs a child may see (server.sandbox.required_inputs). Raises SandboxFailed
    (sandbox.run_dir) when the evaluation rows carry labels: they never leave the server."""
    if LABEL_COLUMN in pq.read_schema(paths.inputs / "eval.parquet").names:
        raise SandboxFailed("evaluation rows carry labels", "The server writes evaluation rows without labels.", rule_id="sandbox.run_dir")
    return {name: (paths.inputs / name).read_bytes() for name in required_inputs(paths.inputs)}


def unpack_outputs(paths: RunPaths, report: WorkerReport) -> None:
    """Writes the worker's output files under paths.outputs (outputs/, or built/ when the features
    stage failed: fresh, plain files, no link followed) and its stderr tail to logs/child.stderr.
    Raises SandboxFailed (sandbox.unsafe_output) on a path that would leave that directory."""
    (paths.logs / "child.stderr").write_text(report.stderr_tail)
    for relative, data in sorted(report.files.items()):
        parts = relative.split("/")
        if relative.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise SandboxFailed("the Ray worker sent an output outside outputs/", "An operator should check the Ray cluster.",
                                rule_id="sandbox.unsafe_output")
        target = paths.outputs.joinpath(*parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError:
            raise SandboxFailed("the Ray worker sent overlapping outputs", "An operator should check the Ray cluster.",
                                rule_id="sandbox.unsafe_output") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
