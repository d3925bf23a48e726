"""run_experiment: the single experiment entrypoint.

The config used is configs/experiment.yaml as it is in the working tree, or that file with the
`config` changes applied for this run only (same contract as propose_config_change's `changes`,
validated the same way, protected fields included). Either way it is re-checked against the
standards committed on the protected branch. The server owns the split, the MLflow run and every
metric; the training child (sandboxed) only ever sees labels of the rows it trains on.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from policies import Verdict
from policies.config_change import canonical_at, protected_changes, schema_remediation
from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import GovernanceError, InvalidInput
from tools.experiment_schema import EXPERIMENT_PATH, REASONING_PATH, ReasoningConfig
from tools.name_families import compact
from tools.propose_config_change import Changes, before_and_after, change_hash, config_diff, parse_changes, refuse_credentials
from tools.provenance import FEATURES_PATH, config_hash, feature_pipeline_hash, lockfile_hash, run_files_param, sha256_bytes
from tools.run_pins import dirtiness

CONFIG_DOC = (
    "Changes for this run only, in propose_config_change's format: a mapping of dotted "
    'configs/experiment.yaml paths to values, e.g. {"model.params.max_depth": 6}, or the same mapping as YAML or '
    "JSON text. Nothing is written; protected fields cannot be changed here. Omit to run configs/experiment.yaml as it is."
)


class RunExperimentInput(StrictInput):
    config: Changes | None = Field(None, description=CONFIG_DOC)
    reasoning: ReasoningConfig | None = Field(None, description="Why this run (required for agents); omitted: configs/reasoning.yaml.")
    dry_run: bool = Field(False, description="Run every check (config, standards, dataset integrity, sandbox) and start nothing.")
    detach: bool = Field(False, description=(
        "Return the run id at once (status RUNNING) after the same checks, and train in a worker that outlives this call, the client "
        "session and the server: for runs longer than the client waits for a tool (Codex: 60 s). Follow with get_run(run_id) "
        "(progress, status, and the full result once FINISHED); stop with cancel_run(run_id)."))
    tokens_used: int | None = Field(None, ge=0, le=10**12, description="Tokens the agent spent on this experiment (logged, Tier 3).")
    estimated_cost: float | None = Field(None, ge=0, le=10**7, description="Estimated cost in the operator's currency (logged, Tier 3).")
    agent_model: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/@ -]+$", description="Model of the calling agent (logged, Tier 3).")


def _reasoning(request: RunExperimentInput, ctx: CallContext, limits: dict[str, Any], used: dict[str, str]) -> dict[str, Any] | None:
    """The request's reasoning, else configs/reasoning.yaml (whose SHA-256 joins `used`)."""
    if request.reasoning is not None:
        return request.reasoning.model_dump(mode="json")
    raw, used[REASONING_PATH] = ctx.ports.configs.read_document(REASONING_PATH, limits)
    try:
        return ReasoningConfig.model_validate(raw).model_dump(mode="json")
    except ValueError:
        return None


def _config(request: RunExperimentInput, ctx: CallContext, limits: dict[str, Any]) -> dict[str, Any]:
    """Facts about the config (as propose_config_change gathers them). Raises InvalidInput when it
    does not validate: nothing else about the run can be judged then."""
    changes = parse_changes(request.config, limits, ctx.ports.configs) if request.config is not None else {}
    raw, digest = ctx.ports.configs.read_document(EXPERIMENT_PATH, limits)
    current, config, errors = before_and_after(raw, changes)
    if config is None:
        fix = "fix this call's `config` changes" if changes else "fix configs/experiment.yaml with propose_config_change (dry_run shows the problems)"
        raise InvalidInput("the experiment config is invalid: " + "; ".join(errors[:10]), schema_remediation(errors, fix), rule_id="config.schema_valid")
    diff = config_diff(current, config)
    facts = {"schema_errors": [], "current": current, "config": config, "diff": diff, "change_hash": change_hash(diff), "approval": None, "in_force": ctx.ports.approvals.in_force()}
    protected = protected_changes(current, config, ctx.config["standards"].get("protected_fields") or {})
    return facts | {"used_files": {EXPERIMENT_PATH: digest}, "protected_paths": [f["path"] for f in protected]}


def _dataset(config: dict[str, Any], ctx: CallContext) -> Any:
    content_hash = config["data"]["dataset"]
    if content_hash is None:
        raise InvalidInput("configs/experiment.yaml names no dataset (data.dataset is null)", "propose data.dataset: <content hash> (mlgate data add prints it)", rule_id="data.chosen")
    return ctx.ports.cas.load(content_hash, ctx.config["policy"]["datasets"])


def _no_features(config: dict[str, Any], columns: list[str]) -> InvalidInput:
    """Nothing to train on: the child would refuse its spec, so the run is refused here, by name."""
    excluded = [str(c) for c in columns if str(c) in set(config["features"]["exclude"])]
    return InvalidInput(
        f"no feature column is left: features.exclude removes {', '.join(excluded[:20]) or 'nothing'}, and the label, "
        "time column, PII columns and protected attributes are never features",
        "keep at least one column out of features.exclude (load_dataset lists the columns)",
        rule_id="features.none_left",
    )


def _provenance(config: dict[str, Any], ctx: CallContext, used: dict[str, str], overridden: bool) -> dict[str, Any]:
    """Tier 1 pins. Dirtiness is decided from the bytes used (features.py as copied into the
    sandbox, the configs as read) against the blobs at the commit (tools/run_pins.dirtiness)."""
    ports = ctx.ports
    features_py = ports.environment.workspace_file(FEATURES_PATH)
    used = {**used, FEATURES_PATH: sha256_bytes(features_py)}
    commit = ports.git.head()
    return {
        "git_commit": commit,
        **dirtiness(ports.git, commit, used, overridden=overridden),
        "run_files_sha256": run_files_param(used),
        "uv_lock_sha256": lockfile_hash(ports.environment.lock_bytes()),
        "feature_pipeline_hash": feature_pipeline_hash(features_py, config["features"]),
        "config_hash": config_hash(config),
        "standards_sha256": ctx.config["standards_sha256"],
        "features_py": features_py,
    }


def gather(request: RunExperimentInput, ctx: CallContext) -> dict[str, Any]:
    limits = ctx.config["policy"]["documents"]
    facts = _config(request, ctx, limits)
    try:
        return _gathered(request, ctx, facts, limits)
    except GovernanceError as exc:
        _say_protected_too(exc, facts["protected_paths"])
        raise


def _say_protected_too(exc: GovernanceError, paths: list[str]) -> None:
    """A refusal while gathering comes before the policies judge the config: an agent that fixed only
    it would meet the protected-field denial next, so the remediation names that now."""
    if paths:
        exc.remediation = f"{exc.remediation}; this config also changes protected fields ({', '.join(paths)}): {PROTECTED_STEP}".lstrip("; ")


def _gathered(request: RunExperimentInput, ctx: CallContext, facts: dict[str, Any], limits: dict[str, Any]) -> dict[str, Any]:
    from tools.run_evidence import before_training  # noqa: PLC0415 - at first use: a server starts without numpy and pandas (tests/server/commands/test_serve_imports.py)
    from tools.run_features import select_features  # noqa: PLC0415

    reasoning = _reasoning(request, ctx, limits, facts["used_files"])
    # Refused, not redacted: a run whose change_description had to be dropped would lack its reasoning.
    refuse_credentials("reasoning", reasoning)
    config, standards = facts["config"], ctx.config["standards"]
    dataset = _dataset(config, ctx)
    features, categorical = select_features(dataset.frame, config, standards)
    if not features:
        raise _no_features(config, list(dataset.frame.columns))
    facts.update(
        principal=ctx.principal,
        reasoning=reasoning,
        dataset=dataset,
        dataset_columns=list(dataset.frame.columns),
        feature_columns=features,
        categorical_columns=categorical,
        protected_override_approved=ctx.ports.approvals.in_force().get("features.use_protected_attributes") == canonical_at(config, "features.use_protected_attributes") == "true",
        sandbox_mode=ctx.ports.sandbox.mode if ctx.ports.sandbox.mode != "unavailable" else ctx.ports.settings.sandbox_mode,
        sandbox_available=ctx.ports.sandbox.mode != "unavailable",
        executor_backend=ctx.ports.sandbox.backend,
        running_runs=ctx.ports.slots.running,
        provenance=_provenance(config, ctx, facts["used_files"], overridden=bool(facts["diff"])),
    )
    # Columns, the split and the leakage scan are judged before any training (tools/run_evidence.py).
    facts.update(before_training(dataset.frame, config, features, ctx.config, facts["in_force"]))
    return facts


async def execute(request: RunExperimentInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Train and evaluate (tools/experiment_runner.py)."""
    from tools.experiment_runner import execute as run_stages  # noqa: PLC0415 - at first use: a server starts without numpy and pandas (tests/server/commands/test_serve_imports.py)

    return await run_stages(request, facts, ctx)


# config.protected_fields' remediation speaks of an approval in the result: a run opens none.
PROTECTED_STEP = (
    "run_experiment opens no approval: propose this change with propose_config_change (without dry_run); its denial "
    "carries the approval_id a human approves, and the approved change is then written to configs/experiment.yaml"
)


def on_deny(request: RunExperimentInput, facts: dict[str, Any], verdict: Verdict, ctx: CallContext) -> dict[str, Any]:
    return {"next_step": PROTECTED_STEP} if "config.protected_fields" in {d.rule_id for d in verdict.denials} else {}


def preview(request: RunExperimentInput, facts: dict[str, Any]) -> dict[str, Any]:
    step = {"next_step": PROTECTED_STEP} if facts.get("protected_paths") else {}
    manifest = facts["dataset"].manifest
    provenance = {k: v for k, v in facts["provenance"].items() if k != "features_py"}
    checks = {k: facts.get(k) for k in ("columns", "split", "leakage")}
    columns = compact("feature_columns", facts["feature_columns"])  # a wide dataset's names by family (tools/name_families.py)
    return {"config": facts["config"], "dataset_hash": manifest["content_hash"], **columns, "provenance": provenance, "sandbox_mode": facts["sandbox_mode"], **checks, **step}


_RULES = load_all()
RULE_IDS = (
    "role.known", "standards.no_drift", "config.schema_valid", "config.allowed_values", "config.protected_fields",
    "config.no_unapproved_overrides", "reasoning.required_for_agents", "reasoning.outcome_from_the_run", "training.seed_set",
    "training.temporal_split_when_time", "training.no_pii_features", "training.protected_attributes_excluded",
    "training.effective_batch_size", "sandbox.available", "executor.isolation", "training.concurrency",
    "data.columns_present", "data.column_names", "data.no_label_or_time_look_alike", "fairness.protected_attributes_present",
    "split.realised_fractions",
    "leakage.forbidden_columns", "leakage.single_feature_proxy",
)
SPEC = ToolSpec(
    name="run_experiment",
    title="Run an experiment",
    description=(
        "Train and evaluate the configured model in the sandbox and log everything to MLflow. Returns run_id, "
        "validation metrics (out-of-fold) with 95% confidence intervals, baseline metrics, metric_delta against the "
        "best prior run, outcome (confirmed/neutral/negative) and a gate receipt, all on validation rows: the test "
        "set is sealed (logged for human reviewers; promote checks its gates and says PASS or FAIL). Progress is "
        "reported per fold/epoch; cancelling kills the training child. Use dry_run to check a config without training, "
        "detach for a run that may outlast the client's tool timeout (then get_run / cancel_run)."
    ),
    input_model=RunExperimentInput,
    rules=tuple(_RULES[r] for r in RULE_IDS),
    gather=gather,
    execute=execute,
    preview=preview,
    on_deny=on_deny,
)
