"""check_drift: Population Stability Index of a dataset against the drift baseline of a model's
training rows (read-only).

The baseline is the `drift_baseline.json` artifact every run records (tools/drift.py: per-feature
bins of the TRAINING rows). The model is named by run id or by registry alias (candidate,
champion); the dataset by content hash, verified and registered like load_dataset's. A feature
whose PSI exceeds the threshold (the standards' `drift.psi_threshold`, else configs/policy.yaml's)
is flagged; a feature the new data lacks is listed, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import anyio
from pydantic import Field, model_validator

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.errors import InvalidInput, NotFound
from tools.lifecycle import model_name
from tools.load_dataset import HASH_DOC, _verified
from tools.name_families import MAX_LISTED, compact
from tools.run_views import RUN_ID_PATTERN, experiment_of

BASELINE_ARTIFACT = "drift_baseline.json"
MAX_BASELINE_BYTES = 64 << 20  # ~550 bytes a feature: 2 000 features take 1.1 MB, the default JSON read cap is 1 MiB
DEFAULT_THRESHOLD = 0.2


class CheckDriftInput(StrictInput):
    content_hash: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$", description="New data to compare. " + HASH_DOC)
    run_id: str | None = Field(None, pattern=RUN_ID_PATTERN, description="The run whose training rows are the baseline (32 lowercase hex). Give this or alias.")
    alias: Literal["candidate", "champion"] | None = Field(None, description="The registered model version behind this alias is the baseline. Give this or run_id.")

    @model_validator(mode="after")
    def _one_target(self) -> CheckDriftInput:
        if (self.run_id is None) == (self.alias is None):
            raise ValueError("give exactly one of run_id or alias")
        return self


def psi_threshold(config: Mapping[str, Any]) -> float:
    """The standards' drift.psi_threshold, else the server's default (configs/policy.yaml)."""
    own = ((config.get("standards") or {}).get("drift") or {}).get("psi_threshold")
    default = ((config.get("policy") or {}).get("drift") or {}).get("psi_threshold", DEFAULT_THRESHOLD)
    return float(own if own is not None else default)


def resolve_run(ports: Any, standards: Mapping[str, Any], request: CheckDriftInput) -> tuple[str, str | None]:
    """(run id, model version) of the baseline. Raises NotFound when the alias points nowhere."""
    if request.run_id is not None:
        return request.run_id, None
    name = model_name(standards)
    version = ports.registry.alias_version(name, request.alias)
    if version is None:
        raise NotFound(f"model {name} has no {request.alias} alias", "promote a run first (promote), or pass run_id", rule_id="drift.no_alias")
    return ports.registry.version(name, version)["run_id"], version


def collect(request: CheckDriftInput, ctx: CallContext) -> dict[str, Any]:
    """Facts: the run (for runs.same_project), the dataset inspection (for the data rules), the
    baseline. Raises NotFound (unknown alias or run, no baseline) and the store's errors."""
    ports, standards = ctx.ports, ctx.config["standards"]
    run_id, version = resolve_run(ports, standards, request)
    run = ports.tracking.get_run(run_id)
    inspection = ports.cas.inspect(request.content_hash, int(ctx.config["policy"]["datasets"]["max_files"]))
    facts = {"principal": ctx.principal, "experiment": experiment_of(ports.tracking, standards), "runs": [run], "version": version, "inspection": inspection, **inspection.facts()}
    return facts


def _baseline(ports: Any, run_id: str) -> Mapping[str, Any]:
    baseline = ports.run_artifacts.read_json(run_id, BASELINE_ARTIFACT, MAX_BASELINE_BYTES)
    if not isinstance(baseline, Mapping) or not isinstance(baseline.get("features"), Mapping):
        raise NotFound(f"run {run_id} has no drift baseline", "pick a finished run_experiment run (it records drift_baseline.json)", rule_id="drift.no_baseline")
    return baseline


async def gather(request: CheckDriftInput, ctx: CallContext) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(collect, request, ctx)


def drift_report(baseline: Mapping[str, Any], frame: Any, threshold: float) -> dict[str, Any]:
    """PSI per feature rounded to 6 places (past MAX_LISTED features, the highest MAX_LISTED and the
    largest of the others), the flagged ones (worst first), the missing ones."""
    from tools.drift import psi_report  # noqa: PLC0415 - at first use: a server starts without numpy and pandas (tests/server/commands/test_serve_imports.py)

    scores = psi_report(baseline, frame)
    present = {name: round(value, 6) for name, value in scores.items() if value is not None}
    ranked = sorted(present, key=lambda n: (-present[n], n))
    flagged = [n for n in ranked if present[n] > threshold]
    missing = sorted(n for n, v in scores.items() if v is None)
    report = {"psi": {n: present[n] for n in ranked[:MAX_LISTED]}, "features": len(present), **compact("flagged", flagged),
              **compact("missing_features", missing), "drifted": bool(flagged), "baseline_rows": baseline.get("rows"), "rows": int(len(frame))}  # fmt: skip
    if len(ranked) > MAX_LISTED:  # a wide dataset: the result stays readable by an agent's client
        report["psi_omitted"] = {"features": len(ranked) - MAX_LISTED, "highest": present[ranked[MAX_LISTED]]}
    return report


def _measure(ports: Any, facts: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    if not _verified(facts, config):
        raise InvalidInput("the dataset did not verify", "load_dataset names what is wrong with it", rule_id="data.integrity")
    baseline = _baseline(ports, facts["runs"][0]["run_id"])
    frame = ports.cas.open(facts["inspection"]).frame
    return drift_report(baseline, frame, psi_threshold(config))


async def execute(request: CheckDriftInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    run_id = facts["runs"][0]["run_id"]
    ctx.audit_refs.update(run_id=run_id, content_hash=request.content_hash)
    report = await anyio.to_thread.run_sync(_measure, ctx.ports, facts, ctx.config)
    return {"run_id": run_id, "alias": request.alias, "model_version": facts["version"], "content_hash": request.content_hash, "threshold": psi_threshold(ctx.config), **report}


_RULES = load_all()
SPEC = ToolSpec(
    name="check_drift",
    title="Check data drift against a model's training data",
    description=(
        "Population Stability Index per feature of a registered dataset (content_hash) against the training rows of "
        "a run (run_id) or of the model version behind an alias (candidate, champion). Features above the PSI "
        "threshold (standards drift.psi_threshold, default 0.2) are flagged, worst first; features the new data "
        "lacks are listed. Read-only."
    ),
    input_model=CheckDriftInput,
    rules=(_RULES["role.known"], _RULES["runs.same_project"], _RULES["data.shadow_only"], _RULES["data.integrity"], _RULES["data.registered"]),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
