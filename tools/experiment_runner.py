"""Executes an allowed run: MLflow run → split → one sandboxed child per fold, a final fit scored
on the held-out test rows, a logistic-regression baseline → server-side metrics → artifacts.

The child of a stage gets labels for its training rows only; its evaluation rows carry no label,
and the test rows' labels never leave this process. The baseline is fitted here, in the server,
on the raw feature columns (tools/baseline.py): the children run the agent's features.py, which
could rewrite anything a child writes. Every failure ends the MLflow run (FAILED, or KILLED on
cancellation) with a reason before the error reaches the enforcement point.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
import pandas as pd

from tools.base import CallContext
from tools.baseline import fit_baseline
from tools.champion_scoring import log_champion_scores, score_champion
from tools.detached_view import RESULT_ARTIFACT
from tools.errors import GovernanceError, SandboxFailed
from tools.experiment_report import finish_report, run_params, run_tags
from tools.labels import labels_from_target
from tools.run_features import context_columns
from tools.splits import SplitPlan, plan_split

_RECONCILED: set[int] = set()


@dataclass(frozen=True)
class Stage:
    name: str
    train: np.ndarray
    evaluate: np.ndarray
    model: dict[str, Any]


@dataclass
class StageResult:
    stage: Stage
    scores: np.ndarray
    child: Any
    directory: Any
    baseline_scores: np.ndarray | None = None  # the server-fitted baseline's scores of the stage's evaluation rows


def labels_of(frame: pd.DataFrame, config: dict[str, Any]) -> np.ndarray:
    """0/1 labels: 1 where the target is the positive class or any of a list of them (compared as
    text, so 1 and "1" in a CSV agree). Raises InvalidInput on missing labels."""
    return labels_from_target(frame[config["data"]["target"]], config["data"]["positive_class"])


def stages_of(plan: SplitPlan, model: dict[str, Any]) -> list[Stage]:
    folds = [Stage(f"fold-{i}", f.train, f.validation, model) for i, f in enumerate(plan.folds)]
    development = np.sort(np.concatenate([plan.folds[0].train, plan.folds[0].validation]))
    return [*folds, Stage("final", development, plan.test, model)]


def child_inputs(frame: pd.DataFrame, labels: np.ndarray, stage: Stage, features: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows with labels, evaluation rows WITHOUT labels); row ids are positions.
    `features`: the columns the child gets (the run's features, then its context columns)."""
    # Joined in one concat: inserting into a frame of hundreds of columns warns (fragmentation) on every stage.
    train = with_columns(frame.iloc[stage.train][features], {"__row_id__": stage.train.astype("int64"), "__label__": labels[stage.train].astype("int64")})
    evaluation = with_columns(frame.iloc[stage.evaluate][features], {"__row_id__": stage.evaluate.astype("int64")})
    return train, evaluation


def with_columns(rows: pd.DataFrame, extra: dict[str, np.ndarray]) -> pd.DataFrame:
    """`rows` (index dropped) with `extra` columns beside them, in one concat."""
    return pd.concat([rows.reset_index(drop=True), pd.DataFrame(extra)], axis=1)


def aligned_scores(predictions: pd.DataFrame, expected: np.ndarray) -> np.ndarray:
    """Scores in the order of `expected`; raises SandboxFailed unless every row is scored once, in [0, 1]."""
    ids = predictions["__row_id__"].to_numpy()
    if len(ids) != len(expected) or len(set(ids.tolist())) != len(ids) or set(ids.tolist()) != set(expected.tolist()):
        raise SandboxFailed("the child's predictions do not cover the evaluation rows exactly once", "src/features.py must keep one output row per input row", rule_id="sandbox.invalid_output")
    scores = predictions.set_index("__row_id__").loc[expected, "score"].to_numpy(dtype="float64")
    if not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        raise SandboxFailed("the child's scores are not probabilities in [0, 1]", "check src/features.py for invalid values", rule_id="sandbox.invalid_output")
    return scores


class StageProgress:
    """Progress of stages running side by side: the sum of each stage's fraction done, so the
    reported value only ever grows."""

    def __init__(self, ctx: CallContext, total: int) -> None:
        self._ctx, self._total, self._done = ctx, total, {}

    async def report(self, stage: str, fraction: float, message: str) -> None:
        self._done[stage] = max(self._done.get(stage, 0.0), min(fraction, 1.0))
        await self._ctx.progress(round(sum(self._done.values()), 4), self._total, f"{stage}: {message}")


class StepMetrics:
    """A stage's step metrics (the child's training loss per epoch or chunk of rounds), written to
    MLflow in one batch at most every FLUSH_SECONDS and when the stage ends: one write per step
    cost about 15 ms of the server's time each, some 60 per run."""

    FLUSH_SECONDS = 5.0

    def __init__(self, ports: Any, run_id: str) -> None:
        self._ports, self._run_id = ports, run_id
        self._pending: list[tuple[dict[str, Any], int]] = []
        self._flushed_at = ports.clock.now()

    async def add(self, metrics: dict[str, Any], step: int) -> None:
        if metrics:
            self._pending.append((metrics, step))
        if self._pending and (self._ports.clock.now() - self._flushed_at).total_seconds() >= self.FLUSH_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending, self._flushed_at = self._pending, [], self._ports.clock.now()
        if pending:
            await anyio.to_thread.run_sync(self._ports.tracking.log_step_metrics, self._run_id, pending)


async def run_stage(ctx: CallContext, run_id: str, stage: Stage, data: dict[str, Any], progress: StageProgress) -> StageResult:
    ports, facts = ctx.ports, data["facts"]
    directory = ports.rundirs.stage_dir(run_id, stage.name)
    context = context_columns(data["frame"].columns, facts["feature_columns"], ctx.config["standards"])
    train, evaluation = child_inputs(data["frame"], data["labels"], stage, [*facts["feature_columns"], *context])
    spec = {"model": stage.model, "seed": data["seed"], "feature_columns": facts["feature_columns"], "context_columns": context,
            "categorical_columns": facts["categorical_columns"], "device": "auto", "task": "fit_predict"}
    await anyio.to_thread.run_sync(ports.rundirs.write_inputs, directory, train, evaluation, spec, facts["provenance"]["features_py"])

    step_metrics = StepMetrics(ports, run_id)

    async def on_progress(step: Any) -> None:
        # server.sandbox_vocabulary worded the message and clamped the metrics; stage names are ours.
        await progress.report(stage.name, step.fraction, step.message)
        await step_metrics.add({f"{stage.name}.{k}": v for k, v in step.metrics.items()}, step.step)

    await progress.report(stage.name, 0.0, f"training on {len(stage.train)} rows")
    try:
        result = await ports.sandbox.run(directory, on_progress=on_progress)
    finally:
        with anyio.CancelScope(shield=True):  # a cancelled or failed stage keeps the steps it made
            await step_metrics.flush()
    result.raise_for_failure()
    predictions = await anyio.to_thread.run_sync(ports.rundirs.read_predictions, directory)
    return StageResult(stage, aligned_scores(predictions, stage.evaluate), result.result, directory)


async def baseline_scores(stage: Stage, data: dict[str, Any]) -> np.ndarray:
    """The logistic baseline of a stage, fitted in this process on the raw feature columns."""
    facts = data["facts"]
    columns = (facts["feature_columns"], facts["categorical_columns"])
    return await anyio.to_thread.run_sync(fit_baseline, data["frame"], data["labels"], (stage.train, stage.evaluate), columns, data["seed"])


def _first_failure(failures: BaseExceptionGroup) -> BaseException:
    """The failure to report when stages failed together: a governed one (sandbox, integrity) first."""
    governed, others = failures.split(GovernanceError)
    group = governed or others
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _reconcile_once(tracking: Any) -> None:
    """Runs left RUNNING by a dead server become FAILED, once per tracking store and process."""
    if id(tracking) not in _RECONCILED:
        tracking.reconcile_orphans()
        _RECONCILED.add(id(tracking))


async def _start(request: Any, facts: dict[str, Any], ctx: CallContext) -> tuple[str, str]:
    tracking, standards = ctx.ports.tracking, ctx.config["standards"]

    def start() -> tuple[str, str]:
        _reconcile_once(tracking)
        experiment = tracking.get_or_create_experiment(f"{standards['client_name']}/{standards['project_name']}")
        run_id = tracking.start_run(experiment, run_tags(request, facts, ctx), run_name=facts["config"]["experiment"]["name"])
        try:
            tracking.log_params(run_id, run_params(request, facts, ctx))
        except Exception as exc:  # a refused param must not leave the run RUNNING
            tracking.end_run(run_id, "FAILED", _failure_reason(exc))
            raise
        return experiment, run_id

    return await anyio.to_thread.run_sync(start)


async def _train_all(ctx: CallContext, run_id: str, facts: dict[str, Any]) -> tuple[SplitPlan, list[StageResult], dict[str, Any]]:
    config, frame = facts["config"], facts["dataset"].frame
    labels = labels_of(frame, config)
    seed = config["experiment"]["seed"]
    plan = plan_split(frame, labels, config["split"], seed=seed, time_column=ctx.config["standards"].get("time_column"))
    data = {"facts": facts, "frame": frame, "labels": labels, "seed": seed}
    stages = stages_of(plan, config["model"])
    progress = StageProgress(ctx, len(stages))
    results: dict[str, StageResult] = {}
    limiter = anyio.CapacityLimiter(int(ctx.config["policy"]["training"]["parallel_stages"]))

    baseline: dict[str, np.ndarray] = {}

    async def one(stage: Stage) -> None:
        async with limiter:
            results[stage.name] = await run_stage(ctx, run_id, stage, data, progress)

    async def champion() -> None:
        # A re-run is checked against its own run, not a champion (tools/reproduce.py).
        if facts.get("run_kind") != "reproduction":
            async with limiter:
                data["champion"] = await score_champion(ctx, run_id, facts["dataset"].manifest["content_hash"], frame, plan.test)

    async def fit_baselines() -> None:
        # The final stage's baseline is scored on the (sealed) test rows; the folds' give the
        # validation lift agents select by.
        for stage in stages:
            baseline[stage.name] = await baseline_scores(stage, data)

    # Stages are independent children (each sees only its own training labels): run them side by
    # side, and the server's own baseline fit with them.
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(fit_baselines)
            group.start_soon(champion)
            for stage in stages:
                group.start_soon(one, stage)
    except BaseExceptionGroup as failures:
        raise _first_failure(failures) from None
    for name, scores in baseline.items():
        results[name].baseline_scores = scores
    await ctx.progress(len(stages), len(stages), "evaluating")
    return plan, [results[s.name] for s in stages], data


PIN_KEYS = ("config_hash", "run_files_sha256", "feature_pipeline_hash", "git_commit")
DETACHED_NEXT = "get_run(run_id) shows progress and status, and once FINISHED this call's full result; cancel_run(run_id) stops it"


def _end_status(exc: BaseException, cancelled: str) -> tuple[str, str]:
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "KILLED", cancelled
    return "FAILED", _failure_reason(exc)


def _failure_reason(exc: BaseException) -> str:
    return f"{exc.rule_id}: {exc.reason}" if isinstance(exc, GovernanceError) else f"internal error ({type(exc).__name__})"


def detach_pins(facts: dict[str, Any]) -> dict[str, Any]:
    """What must be the same when a detached worker starts as when the call was decided."""
    provenance = facts["provenance"]
    return {**{k: provenance.get(k) for k in PIN_KEYS}, "dataset_hash": facts["dataset"].manifest["content_hash"]}


def _note_refs(ctx: CallContext, run_id: str, facts: dict[str, Any]) -> None:
    ctx.audit_refs.update(run_id=run_id, commit=facts["provenance"]["git_commit"] or "", dataset_hash=facts["dataset"].manifest["content_hash"], sandbox_mode=facts["sandbox_mode"])


async def _end(ctx: CallContext, run_id: str, status: str, reason: str | None = None) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(ctx.ports.tracking.end_run, run_id, status, reason)


def _chain_metrics(ctx: CallContext, run_id: str) -> None:
    """The finished run's metrics and params into the audit chain: promote trusts the tracking
    store's figures and hashes only while they are these (server/audit/run_metrics.py). A server
    without the ledger cannot finish a run: promote would refuse it anyway."""
    run = ctx.ports.tracking.get_run(run_id)
    ctx.ports.run_metrics.record(run_id, run["metrics"], run["params"])


async def train_and_finish(ctx: CallContext, experiment: str, run_id: str, facts: dict[str, Any], *, detached: bool = False, cancelled: Callable[[], str] | None = None) -> dict[str, Any]:
    """Train every stage, evaluate, log, end the run FINISHED; a detached run also records the
    result (RESULT_ARTIFACT) before it ends, for get_run. Any failure ends the run FAILED, a
    cancellation KILLED (with the reason `cancelled()` gives), then is raised (GovernanceError for
    a failed run)."""
    try:
        plan, results, data = await _train_all(ctx, run_id, facts)
        payload = await anyio.to_thread.run_sync(finish_report, ctx, experiment, run_id, plan, results, data)
        payload = await _with_champion(ctx, run_id, payload, plan, data)
        if detached:
            await anyio.to_thread.run_sync(ctx.ports.tracking.log_json_artifact, run_id, RESULT_ARTIFACT, payload)
        await anyio.to_thread.run_sync(_chain_metrics, ctx, run_id)
    except BaseException as exc:
        reason = "cancelled through cancel_run" if detached else (cancelled() if cancelled is not None else "cancelled by the client")
        await _end(ctx, run_id, *_end_status(exc, reason))
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_release_inputs, ctx, run_id)
    await anyio.to_thread.run_sync(ctx.ports.tracking.end_run, run_id, "FINISHED")
    return payload


async def _with_champion(ctx: CallContext, run_id: str, payload: dict[str, Any], plan: SplitPlan, data: dict[str, Any]) -> dict[str, Any]:
    """The champion's scores of the test rows logged on the run (tools/champion_scoring.py), and the
    caller told which champion promote will pair the run with, or why it cannot."""
    found = data.get("champion")
    refs = await anyio.to_thread.run_sync(log_champion_scores, ctx, run_id, found, data["labels"], plan.test)
    if found is None:
        return payload
    shown = {k: found["comparison"][k] for k in ("champion_run_id", "champion_version", "scored", "reason")}
    return {**payload, "champion_comparison": shown, "artifacts": sorted([*payload["artifacts"], *refs])}


def _release_inputs(ctx: CallContext, run_id: str) -> None:
    """The run's copies of dataset rows go once it ended; a failure to delete them never hides how
    the run ended (the next run's operator sees the files)."""
    with contextlib.suppress(OSError):
        ctx.ports.rundirs.release_inputs(run_id)


def _waiting(ctx: CallContext) -> Any:
    async def waiting(message: str) -> None:
        await ctx.progress(0, None, message)

    return waiting


async def _detach(request: Any, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Create the run, hand it to a detached worker, return at once (the run is RUNNING)."""
    ports = ctx.ports
    async with ports.slots.hold(_waiting(ctx)) as lease:
        _experiment, run_id = await _start(request, facts, ctx)
        _note_refs(ctx, run_id, facts)
        arguments = request.model_dump(mode="json", exclude_unset=True)
        try:
            # before the worker exists: it may decide training.concurrency while this lease is still
            # held, and must not count its own run's slot as another run (server/slots.py)
            await lease.name_run(run_id)
            call_id = await anyio.to_thread.run_sync(lambda: ports.detached.launch(
                run_id=run_id, principal=ctx.principal, transport=ctx.transport, arguments=arguments, decision=ctx.audit_refs["decision"], pins=detach_pins(facts)))
        except BaseException as exc:
            await _end(ctx, run_id, *_end_status(exc, "cancelled by the client"))
            raise
    return {"run_id": run_id, "status": "RUNNING", "detached": True, "call_id": call_id, "next": DETACHED_NEXT}


async def execute(request: Any, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Train and evaluate; returns the result payload (with detach: the RUNNING run at once).
    Raises GovernanceError on a failed run."""
    if getattr(request, "detach", False):
        return await _detach(request, facts, ctx)
    async with ctx.ports.slots.hold(_waiting(ctx)):
        experiment, run_id = await _start(request, facts, ctx)
        _note_refs(ctx, run_id, facts)
        payload = None
        with ctx.ports.attached.training(run_id) as attached:  # cancel_run reaches the run here
            payload = await train_and_finish(ctx, experiment, run_id, facts, cancelled=attached.reason)
    if payload is None:
        raise SandboxFailed(f"run {run_id} was cancelled through cancel_run by {attached.cancelled_by}", "get_run shows the run (KILLED); run the experiment again if it is still wanted", rule_id="run.cancelled")
    return payload
