"""compare_runs: two to five runs of this project side by side (read-only).

What differs in their configs (dotted experiment.yaml paths) and pins, every validation metric with
each run's value and its difference from the first run, and on the primary metric which run is best
and whether its 95% CI overlaps another run's: overlapping intervals mean the difference is within
the noise of the validation rows, the same reading run_experiment's `outcome` gives. Test-set
figures are sealed (tools/sealed.py): comparing runs on them would select on the test set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, field_validator

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.metric_names import is_better
from tools.model_card import PROVENANCE
from tools.run_pins import CONFIG_PREFIX
from tools.run_views import RUN_ID_PATTERN, experiment_of, figures, lower_is_better, parsed, primary_metric, safe_params, summary, metric_names, with_ci

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN)]
PINS = (*PROVENANCE, "git_dirty")


class CompareRunsInput(StrictInput):
    run_ids: list[RunId] = Field(min_length=2, max_length=5, description="2 to 5 distinct MLflow run ids (32 lowercase hex) of this project; the first is the reference for differences.")

    @field_validator("run_ids")
    @classmethod
    def _distinct(cls, run_ids: list[str]) -> list[str]:
        if len(set(run_ids)) != len(run_ids):
            raise ValueError("run ids must be distinct")
        return run_ids


# --- pure comparisons ---------------------------------------------------------------------------


def differing(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{key: {run_id: value}} for every key whose value is not the same in every run (absent = None)."""
    keys = sorted({k for per_run in values.values() for k in per_run})
    table = {key: {run_id: per_run.get(key) for run_id, per_run in values.items()} for key in keys}
    return {key: row for key, row in table.items() if len({repr(v) for v in row.values()}) > 1}


def config_differences(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    configs = {r["run_id"]: {k[len(CONFIG_PREFIX) :]: parsed(v) for k, v in safe_params(r).items() if k.startswith(CONFIG_PREFIX)} for r in runs}
    return differing(configs)


def pin_differences(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return differing({r["run_id"]: {k: v for k, v in safe_params(r).items() if k in PINS} for r in runs})


def best_of(metric: str, values: Mapping[str, float | None]) -> str | None:
    best = None
    for run_id, value in values.items():
        if value is not None and value == value and (best is None or is_better(metric, value, values[best])):
            best = run_id
    return best


def metric_differences(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every validation metric: each run's value, its difference from the first run's, the best run."""
    names = sorted({m for r in runs for m in metric_names(r["metrics"])})
    first = runs[0]["run_id"]
    table = {}
    for name in names:
        values = {r["run_id"]: r["metrics"].get(f"val_{name}") for r in runs}
        deltas = {run_id: None if v is None or values[first] is None else v - values[first] for run_id, v in values.items()}
        table[name] = {"values": figures(values), "delta_vs_first": figures(deltas), "best_run_id": best_of(name, values), "lower_is_better": lower_is_better(name)}
    return table


def overlaps(a: Mapping[str, float] | None, b: Mapping[str, float] | None) -> bool | None:
    return None if a is None or b is None else a["low"] <= b["high"] and b["low"] <= a["high"]


def primary_comparison(runs: Sequence[Mapping[str, Any]], metric: str) -> dict[str, Any]:
    """Which run is best on the primary metric and whether its CI overlaps any other run's."""
    measured = {r["run_id"]: with_ci(r["metrics"], metric) for r in runs}
    best = best_of(metric, {run_id: m["value"] for run_id, m in measured.items()})
    if best is None:
        return {"metric": metric, "runs": measured, "best_run_id": None, "ci_overlap": None, "verdict": f"no run measured val_{metric}"}
    overlap = {run_id: overlaps(measured[best]["ci95"], m["ci95"]) for run_id, m in measured.items() if run_id != best}
    any_overlap = None if None in overlap.values() else any(overlap.values())
    return {"metric": metric, "lower_is_better": lower_is_better(metric), "runs": measured, "best_run_id": best, "ci_overlap_with_best": overlap, "ci_overlap": any_overlap, "verdict": _verdict(metric, best, overlap)}


def _verdict(metric: str, best: str, overlap: Mapping[str, bool | None]) -> str:
    unknown = sorted(r for r, o in overlap.items() if o is None)
    tied = sorted(r for r, o in overlap.items() if o)
    if unknown:
        return f"{best} has the best {metric}, but {', '.join(unknown)} logged no 95% CI, so the difference cannot be judged"
    if tied:
        return f"{best} has the best {metric}, but its 95% CI overlaps {', '.join(tied)}: the difference is within noise (neutral)"
    return f"{best} has the best {metric} and its 95% CI overlaps no other run's: the difference is beyond the test-set noise"


# --- the tool -----------------------------------------------------------------------------------


def gather(request: CompareRunsInput, ctx: CallContext) -> dict[str, Any]:
    """The runs and this project's experiment. Raises NotFound for an unknown run id (a deny)."""
    tracking, standards = ctx.ports.tracking, ctx.config["standards"]
    runs = [tracking.get_run(run_id) for run_id in request.run_ids]
    return {"principal": ctx.principal, "experiment": experiment_of(tracking, standards), "primary": primary_metric(standards), "runs": runs}


async def execute(request: CompareRunsInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    runs, primary = facts["runs"], facts["primary"]
    return {
        "experiment": facts["experiment"]["name"], "run_ids": list(request.run_ids), "runs": [summary(r, primary) for r in runs],
        "config_differences": config_differences(runs), "pin_differences": pin_differences(runs),
        "metric_differences": metric_differences(runs), "primary": primary_comparison(runs, primary),
    }  # fmt: skip


_RULES = load_all()
SPEC = ToolSpec(
    name="compare_runs",
    title="Compare runs",
    description=(
        "Compare 2-5 runs of this project (read-only): the config paths whose values differ, differing pins (commit, "
        "dataset, hashes, seed), every validation metric per run with its difference from the first run, and which run is "
        "best on the primary metric and whether its 95% CI overlaps the others' (overlap = within noise). Test metrics are sealed."
    ),
    input_model=CompareRunsInput,
    rules=(_RULES["role.known"], _RULES["runs.same_project"]),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
