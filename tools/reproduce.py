"""reproduce: re-run a past run from its pins and compare (issue 5; evidence for the champion gate).

The pins are restored, not trusted: the run's params are the ones the audit chain recorded when it
finished (pin `audit_record`), src/features.py and configs/experiment.yaml are read from the
run's commit, from git's object store (whatever the working tree holds now), the
config is rebuilt from the run's params and must hash to its config_hash, src/features.py must
hash to its feature_pipeline_hash, the dataset bytes are re-hashed against the content hash, the
feature columns and the standards must be the ones recorded. A pin that cannot be restored is a
denial, and the run is recorded as not reproduced.

The re-run goes through the same sandboxed machinery as run_experiment (tools/experiment_runner)
with the same seed; every test metric must agree within configs/policy.yaml
promotion.reproduction_tolerance. When it does, the run is re-run with the next seeds so the
champion gate can measure the variance of the primary metric across promotion.seeds seeds. The
verdict is recorded on the original run: tag `reproduced=true|false`, the re-run ids, the variance.
"""

from __future__ import annotations

import copy
import json
import statistics
from dataclasses import dataclass
from typing import Any

import anyio
from pydantic import Field

from policies import Verdict
from policies.promotion import metric_differences, reproduction_passes, worst_difference
from policies.provenance import COMMIT
from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import GovernanceError
from tools.experiment_schema import EXPERIMENT_PATH
from tools.promote import REPRODUCES_TAG, REPRODUCTION_TAG, SEED_RUNS_TAG
from tools.provenance import config_hash, feature_columns_sha256, feature_pipeline_hash, lockfile_hash, run_files_param, sha256_bytes
from tools.run_pins import REPRODUCTION_KIND, REPRODUCTION_OF, rebuild_config, rerun_seed
from tools.run_record import record_problem
from tools.run_views import figure, figures, require_project_run
from tools.sealed import SEALED_NOTE

FEATURES_PATH = "src/features.py"


class ReproduceInput(StrictInput):
    run_id: str = Field(description="MLflow run id (32 lowercase hex) of a FINISHED run to re-run from its pins.", pattern=r"^[0-9a-f]{32}$")
    dry_run: bool = Field(False, description="Restore and check every pin (commit, config, features, dataset, standards); train nothing.")


@dataclass(frozen=True)
class ReRun:
    """The request fields the experiment runner logs; a re-run spends no agent tokens."""

    agent_model: str | None = None
    tokens_used: int | None = None
    estimated_cost: float | None = None


def _pin(name: str, ok: bool, expected: Any, observed: Any, reason: str) -> dict[str, Any]:
    return {"pin": name, "ok": ok, "expected": expected, "observed": observed, "reason": "restored" if ok else reason}


# --- gather ---------------------------------------------------------------------------------


def files_at(ctx: CallContext, commit: str) -> dict[str, bytes | None]:
    return ctx.ports.worktrees.read_files(commit, [FEATURES_PATH, EXPERIMENT_PATH])


def committed_config(ctx: CallContext, raw: bytes | None) -> Any:
    try:
        return ctx.ports.configs.parse(raw.decode("utf-8"), ctx.config["policy"]["documents"], EXPERIMENT_PATH) if raw else None
    except (GovernanceError, UnicodeDecodeError):
        return None


def _record_pin(ctx: CallContext, run: dict[str, Any]) -> dict[str, Any]:
    """The run's metrics, params and artifacts as the audit chain recorded them when it finished: its
    pins are its params, and the tracking store is a file an agent can edit (server/audit/run_metrics.py).
    A run finished before runs were chained has no record and passes when mlgate evaluated it then,
    as promote lets its champion; one copied into the store by hand does not."""
    problem = record_problem(ctx, run, legacy_ok=True)
    return _pin("audit_record", problem is None, "as recorded", "as recorded" if problem is None else "edited", problem or "")


def _source_pins(ctx: CallContext, params: dict[str, str], facts: dict[str, Any]) -> list[dict[str, Any]]:
    """commit, config and src/features.py as they were at the run's commit."""
    commit = params.get("git_commit", "")
    if not COMMIT.match(commit) or not ctx.ports.git.has_commit(commit):
        return [_pin("commit", False, commit, None, f"commit {commit[:40]!r} is not in the workspace repository")]
    try:
        files = files_at(ctx, commit)
    except GovernanceError as exc:
        return [_pin("commit", False, commit, None, exc.reason)]
    facts["config"] = rebuild_config(params, committed_config(ctx, files[EXPERIMENT_PATH]))
    facts["features_py"] = files[FEATURES_PATH]
    features_hash = feature_pipeline_hash(files[FEATURES_PATH], facts["config"]["features"]) if facts["config"] and files[FEATURES_PATH] is not None else None
    return [
        _pin("commit", True, commit, commit, ""),
        _pin("config", facts["config"] is not None, params.get("config_hash"), facts["config"] and config_hash(facts["config"]), "neither the logged config nor the committed one hashes to config_hash"),
        _pin("features", features_hash == params.get("feature_pipeline_hash"), params.get("feature_pipeline_hash"), features_hash, f"{FEATURES_PATH} at the commit does not hash to feature_pipeline_hash"),
    ]


def _data_pins(ctx: CallContext, params: dict[str, str], facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset bytes (re-hashed now) and the feature columns they give under the standards."""
    from tools.run_features import select_features  # noqa: PLC0415 - at first use: a server starts without numpy and pandas (tests/server/commands/test_serve_imports.py)

    recorded = params.get("dataset_content_hash")
    try:
        facts["dataset"] = ctx.ports.cas.load(str(recorded), ctx.config["policy"]["datasets"])
    except GovernanceError as exc:
        return [_pin("dataset", False, recorded, None, exc.reason)]
    pins = [_pin("dataset", True, recorded, recorded, "")]
    if facts.get("config") is not None:
        facts["feature_columns"], facts["categorical_columns"] = select_features(facts["dataset"].frame, facts["config"], ctx.config["standards"])
        pins.append(_features_pin(params, facts["feature_columns"]))
    return pins


def _features_pin(params: dict[str, str], columns: list[str]) -> dict[str, Any]:
    """The columns compared with the logged list, or with its hash when the list did not fit in a param."""
    reason = "the dataset and standards now give other feature columns"
    if "feature_columns" in params or "feature_columns_sha256" not in params:
        expected = json.loads(params.get("feature_columns") or "null")
        return _pin("feature_columns", columns == expected, expected, columns, reason)
    observed = feature_columns_sha256(columns)
    return _pin("feature_columns", observed == params["feature_columns_sha256"], params["feature_columns_sha256"], observed, reason + " (compared by feature_columns_sha256)")


def gather(request: ReproduceInput, ctx: CallContext) -> dict[str, Any]:
    """Facts for the reproduce rules. Raises NotFound for an unknown run or one of another
    project (a deny: its pins are neither checked nor marked)."""
    ports = ctx.ports
    run = dict(ports.tracking.get_run(request.run_id))
    require_project_run(ports.tracking, ctx.config["standards"], run)
    params = run["params"]
    facts: dict[str, Any] = {"principal": ctx.principal, "run": run, "config": None, "features_py": None, "dataset": None, "feature_columns": None, "categorical_columns": None}
    pins = [_record_pin(ctx, run), *_source_pins(ctx, params, facts), *_data_pins(ctx, params, facts)]
    standards = ctx.config["standards_sha256"]
    pins.append(_pin("standards", params.get("standards_sha256") == standards, params.get("standards_sha256"), standards, "the standards changed since the run"))
    facts.update(
        pins=pins,
        uv_lock_sha256=lockfile_hash(ports.environment.lock_bytes()),
        sandbox_mode=ports.sandbox.mode if ports.sandbox.mode != "unavailable" else ports.settings.sandbox_mode,
        sandbox_available=ports.sandbox.mode != "unavailable",
        executor_backend=ports.sandbox.backend,
        running_runs=ports.slots.running,
    )
    return facts


def preview(request: ReproduceInput, facts: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": request.run_id, "pins": facts["pins"], "environment_matches": facts["uv_lock_sha256"] == facts["run"]["params"].get("uv_lock_sha256")}


def _record(ctx: CallContext, run_id: str, tags: dict[str, Any]) -> None:
    ctx.ports.tracking.set_tags(run_id, {**tags, "mlgate.reproduction_checked_at": ctx.ports.clock.iso()})


def on_deny(request: ReproduceInput, facts: dict[str, Any], verdict: Verdict, ctx: CallContext) -> dict[str, Any]:
    """A pin that cannot be restored is a failed reproduction: record it on the run."""
    extra = preview(request, facts)
    if "reproduce.pins_intact" in {d.rule_id for d in verdict.denials}:
        broken = "; ".join(f"{p['pin']}: {p['reason']}" for p in facts["pins"] if not p["ok"])
        _record(ctx, request.run_id, {"reproduced": "false", REPRODUCTION_TAG: "", SEED_RUNS_TAG: "", "mlgate.reproduction_failure": broken})
        extra["reproduced"] = False
    return extra


# --- execute ----------------------------------------------------------------------------------


def _rerun_facts(facts: dict[str, Any], ctx: CallContext, seed: int, kind: str) -> dict[str, Any]:
    config = copy.deepcopy(facts["config"])
    config["experiment"]["seed"] = seed
    params = facts["run"]["params"]
    provenance = {
        "git_commit": params["git_commit"], "git_dirty": False, "uv_lock_sha256": facts["uv_lock_sha256"],
        "feature_pipeline_hash": feature_pipeline_hash(facts["features_py"], config["features"]), "config_hash": config_hash(config),
        "standards_sha256": ctx.config["standards_sha256"], "features_py": facts["features_py"],
        # the only workspace file a re-run uses is features.py, read from the commit itself
        "run_files_sha256": run_files_param({FEATURES_PATH: sha256_bytes(facts["features_py"])}),
    }  # fmt: skip
    reasoning = {"hypothesis_category": "reproduction", "change_description": f"re-run of {facts['run']['run_id']} from its pins with seed {seed}", "expected_effect": "the recorded test metrics, within the reproduction tolerance"}
    return {
        "config": config, "dataset": facts["dataset"], "feature_columns": facts["feature_columns"], "categorical_columns": facts["categorical_columns"],
        "provenance": provenance, "reasoning": reasoning, "sandbox_mode": facts["sandbox_mode"], "executor_backend": facts["executor_backend"],
        "run_kind": "reproduction", "reproduction": {REPRODUCTION_OF: facts["run"]["run_id"], REPRODUCTION_KIND: kind},
    }  # fmt: skip


async def _rerun(facts: dict[str, Any], ctx: CallContext, seed: int, kind: str) -> dict[str, Any]:
    """One sandboxed re-run; returns its MLflow run. Raises GovernanceError when it fails."""
    from tools.experiment_runner import execute as run_stages  # noqa: PLC0415 - at first use: a server starts without numpy and pandas (tests/server/commands/test_serve_imports.py)

    payload = await run_stages(ReRun(), _rerun_facts(facts, ctx, seed, kind), ctx)
    tags = {REPRODUCES_TAG: facts["run"]["run_id"], "mlgate.reproduction_kind": kind}
    await anyio.to_thread.run_sync(lambda: ctx.ports.tracking.set_tags(payload["run_id"], tags))
    return dict(await anyio.to_thread.run_sync(ctx.ports.tracking.get_run, payload["run_id"]))


async def _seed_runs(facts: dict[str, Any], ctx: CallContext, metric: str) -> tuple[list[dict[str, Any]], float | None]:
    seed, wanted = int(facts["run"]["params"]["seed"]), int(ctx.config["policy"]["promotion"]["seeds"])
    runs = [await _rerun(facts, ctx, rerun_seed(seed, k), "seed") for k in range(1, wanted)]
    values = [facts["run"]["metrics"].get(metric), *(r["metrics"].get(metric) for r in runs)]
    variance = statistics.variance(values) if len(values) >= 2 and None not in values else None
    # Each seed run's validation figure: its test figure is sealed (tools/sealed.py).
    shown = "val_" + metric.removeprefix("test_")
    return [{"run_id": r["run_id"], "seed": int(r["params"]["seed"]), shown: r["metrics"].get(shown)} for r in runs], variance


async def _reproduce(request: ReproduceInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    tolerance = float(ctx.config["policy"]["promotion"]["reproduction_tolerance"])
    metric = f"test_{(ctx.config['standards'].get('gates') or {}).get('primary_metric', 'roc_auc')}"
    rerun = await _rerun(facts, ctx, int(facts["run"]["params"]["seed"]), "same_seed")
    differences = metric_differences(facts["run"]["metrics"], rerun["metrics"])
    passed = reproduction_passes(differences, tolerance)
    seeds, variance = await _seed_runs(facts, ctx, metric) if passed else ([], None)
    return {
        "run_id": request.run_id, "reproduced": passed, "reproduction_run_id": rerun["run_id"], "tolerance": tolerance,
        "differences": differences, "max_difference": worst_difference(differences), "seed_runs": seeds,
        f"seed_variance_{metric.removeprefix('test_')}": variance, "environment_matches": facts["uv_lock_sha256"] == facts["run"]["params"].get("uv_lock_sha256"),
    }  # fmt: skip


def _verdict_tags(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "reproduced": str(result["reproduced"]).lower(), REPRODUCTION_TAG: result["reproduction_run_id"],
        SEED_RUNS_TAG: ",".join(r["run_id"] for r in result["seed_runs"]), "mlgate.reproduction_max_difference": result["max_difference"],
        "mlgate.reproduction_failure": "" if result["reproduced"] else f"test metrics differ by more than {result['tolerance']:g}",
    }  # fmt: skip


async def execute(request: ReproduceInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Re-run, compare, record the verdict on the original run. Raises GovernanceError (recorded
    as not reproduced) when a re-run fails."""
    params = facts["run"]["params"]
    try:
        result = await _reproduce(request, facts, ctx)
    except GovernanceError as exc:
        await anyio.to_thread.run_sync(_record, ctx, request.run_id, {"reproduced": "false", REPRODUCTION_TAG: "", SEED_RUNS_TAG: "", "mlgate.reproduction_failure": f"{exc.rule_id}: {exc.reason}"})
        raise
    finally:
        ctx.audit_refs.update(run_id=request.run_id, commit=params.get("git_commit"), dataset_hash=params.get("dataset_content_hash"))
    await anyio.to_thread.run_sync(_record, ctx, request.run_id, _verdict_tags(result))
    variance = {k: v for k, v in result.items() if k.startswith("seed_variance_") and v is not None}
    if variance:
        await anyio.to_thread.run_sync(lambda: ctx.ports.tracking.log_metrics(request.run_id, variance))
    shown = {**result, "differences": figures(result["differences"]), "max_difference": figure(result["max_difference"]), "seed_runs": [figures(r) for r in result["seed_runs"]]}
    # the variance is of the test metric: sealed for agents, as get_run seals it (tools/sealed.py)
    return shown if ctx.principal.is_human else {**shown, **dict.fromkeys(variance, SEALED_NOTE)}


_RULES = load_all()
RULE_IDS = ("role.known", "reproduce.run_finished", "reproduce.pins_intact", "sandbox.available", "executor.isolation", "training.concurrency")
SPEC = ToolSpec(
    name="reproduce",
    title="Reproduce a run from its pins",
    description=(
        "Re-run a FINISHED run from its recorded pins (the files of its commit, its config, dataset hash and seed) in "
        "the sandbox and compare every test metric within the reproduction tolerance; when it reproduces, re-run it "
        "with the next seeds to measure the seed variance (of the test metric: sealed for agents). Records "
        "reproduced=true|false on the original run (promote to champion needs true). Use dry_run to check the pins "
        "without training."
    ),
    input_model=ReproduceInput,
    rules=tuple(_RULES[r] for r in RULE_IDS),
    gather=gather,
    execute=execute,
    preview=preview,
    on_deny=on_deny,
)
