"""Views of MLflow runs for the read-only tools and resources (list, get, compare).

Built from what run_experiment logs (tools/experiment_report.py): Tier 1 params, `config.*` and
`reasoning.*` params, `val_<metric>` metrics with `val_<metric>_ci95_low|high`, `cv_<metric>_mean`,
`val_baseline_<name>_<metric>`, `metric_delta`, and the tags `outcome`, `gates_passed`, `principal`.
Every view shows the validation (selection) figures; test-set figures are sealed (tools/sealed.py)
and only `detail(..., reveal=True)`, for humans, carries them. Params and tags pass the secret
scanner again on the way out; no view carries data rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from policies.decision import decide_one
from policies.runs import same_project
from tools.detached_view import RESULT_ARTIFACT, detached_view, is_detached
from tools.errors import NotFound
from tools.metric_names import LOWER_IS_BETTER, METRICS, REPORT_DIGITS
from tools.model_card import PROVENANCE
from tools.name_families import compact
from tools.run_pins import unflatten
from tools.sealed import SEALED_NOTE, is_sealed
from tools.secrets_scan import strip_secrets

RUN_ID_PATTERN = r"^[0-9a-f]{32}$"
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
OUTCOMES = ("confirmed", "neutral", "negative")
RUN_KINDS = ("experiment", "reproduction")
RUN_KIND_TAG = "mlgate.run_kind"
END_REASON_TAG = "mlgate.end_reason"
REDACTED_TAG = "mlgate.redacted_keys"
REPORT_ARTIFACT = "evaluation_report.json"
SHOWN_TAGS = ("client_name", "project_name", "principal", "role", "transport", "agent_model", "mlgate.sandbox_mode", "mlgate.executor", RUN_KIND_TAG, "outcome", "gates_passed", "reproduced", "promoted", "mlgate.leakage")
TIMINGS = ("train_seconds_total", "train_seconds_final", "inference_latency_ms_per_row")
DATA_SHAPE = ("n_rows", "n_columns", "n_features")
COST = ("tokens_used", "estimated_cost", "agent_model")


class Runs(Protocol):
    def find_experiment(self, name: str) -> str | None: ...

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Raises NotFound."""
        ...

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None, max_results: int = 100) -> list[dict[str, Any]]: ...

    def list_artifacts(self, run_id: str, limit: int = 500) -> list[str]: ...


class JsonArtifacts(Protocol):
    def read_json(self, run_id: str, name: str) -> Any | None: ...


# --- the project -------------------------------------------------------------------------------


def experiment_of(tracking: Runs, standards: Mapping[str, Any]) -> dict[str, Any]:
    """This workspace's experiment `{name, id}`; id is None before the first run (never created here)."""
    name = f"{standards['client_name']}/{standards['project_name']}"
    return {"name": name, "id": tracking.find_experiment(name)}


def require_project_run(tracking: Runs, standards: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """Refuse a run of another project's experiment before anything else is read or written: a
    tracking store shared by projects must not let one project's agent act on another's runs
    (mark them not reproduced, promote them, open PRs citing them). Raises NotFound
    (runs.same_project, the rule get_run decides with)."""
    decision = decide_one(same_project, {"runs": [run], "experiment": experiment_of(tracking, standards)}, {})
    if not decision.allowed:
        raise NotFound(decision.reason, decision.remediation, rule_id=decision.rule_id)


def primary_metric(standards: Mapping[str, Any]) -> str:
    return str((standards.get("gates") or {}).get("primary_metric") or "roc_auc")


# --- small readers -----------------------------------------------------------------------------


def iso_time(millis: Any) -> str | None:
    return None if not isinstance(millis, int) else datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat()


def flag(text: Any) -> bool | None:
    return {"true": True, "false": False}.get(str(text).lower()) if text is not None else None


def parsed(text: Any) -> Any:
    """A param value as logged (canonical JSON for non-strings), back as a value."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def safe_params(run: Mapping[str, Any]) -> dict[str, str]:
    return strip_secrets(run.get("params") or {})[0]


SELECTION = "val_"  # the metrics agents select by: validation rows (tools/sealed.py)


def figure(value: Any) -> Any:
    """A metric as results show it: rounded to REPORT_DIGITS decimals, as run_experiment's result and
    the evaluation report are, so one run reads the same in every tool (MLflow keeps full precision)."""
    return round(value, REPORT_DIGITS) + 0.0 if isinstance(value, float) and math.isfinite(value) else value


def figures(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: figure(value) for name, value in values.items()}


def counts(values: Mapping[str, Any]) -> dict[str, Any]:
    """Row and column counts, which MLflow stores as floats, as the whole numbers they are."""
    return {name: int(value) if isinstance(value, float) and value.is_integer() else value for name, value in values.items()}


def with_ci(metrics: Mapping[str, float], metric: str, prefix: str = SELECTION) -> dict[str, Any]:
    """`{value, ci95}` of validation metric `metric` (test metric with prefix "test_"); ci95 is None
    when no interval was logged."""
    low, high = metrics.get(f"{prefix}{metric}_ci95_low"), metrics.get(f"{prefix}{metric}_ci95_high")
    ci = None if low is None or high is None else {"low": figure(low), "high": figure(high)}
    return {"value": figure(metrics.get(f"{prefix}{metric}")), "ci95": ci}


def metric_names(metrics: Mapping[str, float], prefix: str = SELECTION) -> list[str]:
    return sorted(k[len(prefix) :] for k in metrics if k.startswith(prefix) and k[len(prefix) :] in METRICS)


def baselines(metrics: Mapping[str, float], prefix: str = f"{SELECTION}baseline_") -> dict[str, dict[str, float]]:
    """{baseline name: {metric: value}} from `<prefix><name>_<metric>` metrics."""
    found: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        metric = next((m for m in METRICS if key.startswith(prefix) and key.endswith(f"_{m}")), None)
        if metric is not None:
            found.setdefault(key[len(prefix) : -len(metric) - 1], {})[metric] = figure(value)
    return {name: dict(sorted(values.items())) for name, values in sorted(found.items())}


# --- the views ---------------------------------------------------------------------------------


def summary(run: Mapping[str, Any], primary: str) -> dict[str, Any]:
    """One row of a run listing."""
    params, tags = safe_params(run), run.get("tags") or {}
    return {
        "run_id": run["run_id"], "name": tags.get("mlflow.runName"), "status": run["status"], "start_time": iso_time(run.get("start_time")),
        "principal": tags.get("principal"), "run_kind": tags.get(RUN_KIND_TAG), "outcome": tags.get("outcome"), "gates_passed": flag(tags.get("gates_passed")),
        "primary_metric": {"metric": primary, **with_ci(run.get("metrics") or {}, primary)},
        "dataset_hash": params.get("dataset_content_hash"), "commit": params.get("git_commit"), "dirty": flag(params.get("git_dirty")),
    }  # fmt: skip


def _comparison(run: Mapping[str, Any], primary: str, report: Mapping[str, Any] | None) -> dict[str, Any]:
    prior = (report or {}).get("comparison") or {}
    return {
        "metric": primary, "metric_delta": figure((run.get("metrics") or {}).get("metric_delta")), "outcome": (run.get("tags") or {}).get("outcome"),
        "best_prior_run_id": prior.get("best_prior_run_id"), "best_prior_value": prior.get("best_prior_value"), "rule": prior.get("rule"),
    }  # fmt: skip


def _picked(values: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {k: values[k] for k in keys if k in values}


def sealed_test(metrics: Mapping[str, float], report: Mapping[str, Any] | None) -> dict[str, Any]:
    """The test-set figures, for humans only: test metrics with CIs, test baselines, paired
    comparisons, the gate receipt on the test rows and the test metric's variance across seeds
    (reproduce)."""
    sealed = (report or {}).get("sealed_test") or {}
    return {
        "metrics": {m: with_ci(metrics, m, "test_") for m in metric_names(metrics, "test_")},
        "baselines": baselines(metrics, "baseline_"), "paired": sealed.get("paired"), "gates": sealed.get("gates"),
        "other": {k: figure(v) for k, v in sorted(metrics.items()) if is_sealed(k) and k.startswith("test_") and k[5:] not in METRICS and "_ci95_" not in k},
        "seed_variance": {k.removeprefix("seed_variance_"): figure(v) for k, v in sorted(metrics.items()) if k.startswith("seed_variance_")},
    }  # fmt: skip


def detail(run: Mapping[str, Any], experiment: str, primary: str, artifacts: list[str], report: Mapping[str, Any] | None, reveal: bool = False) -> dict[str, Any]:
    """Everything an agent needs about one run, with no data rows and no secrets; the test-set
    figures only when `reveal` (a human reads them), else a note that they are sealed."""
    params, metrics, tags = safe_params(run), run.get("metrics") or {}, strip_secrets(run.get("tags") or {})[0]
    gates = (report or {}).get("gates")
    test = {"sealed": False, **sealed_test(metrics, report)} if reveal else {"sealed": True, "note": SEALED_NOTE}
    return {
        **summary(run, primary), "experiment": experiment, "end_time": iso_time(run.get("end_time")), "end_reason": tags.get(END_REASON_TAG),
        "provenance": {**_picked(params, PROVENANCE), "git_dirty": flag(params.get("git_dirty"))},
        "config": unflatten(params), "reasoning": unflatten(params, "reasoning."), **_feature_columns(params, report),
        "hardware": unflatten(params, "hardware."),
        "metrics_basis": "validation", "metrics": {m: with_ci(metrics, m) for m in metric_names(metrics)},
        "cv_metrics": {k[3:-5]: figure(v) for k, v in sorted(metrics.items()) if k.startswith("cv_") and k.endswith("_mean")}, "test_set": test,
        "baselines": baselines(metrics), "comparison": _comparison(run, primary, report),
        "gate_receipt": {"gates": gates if isinstance(gates, list) else None, "passed": flag(tags.get("gates_passed"))},
        "timings": figures(_picked(metrics, TIMINGS)), "data_shape": counts(_picked(metrics, DATA_SHAPE)), "agent_cost": {k: parsed(v) for k, v in _picked(params, COST).items()},
        "tags": _picked(tags, SHOWN_TAGS), "redacted_keys": [k for k in tags.get(REDACTED_TAG, "").split(",") if k], "artifacts": artifacts,
        **payload_sections(report or {}),
    }  # fmt: skip


def _feature_columns(params: Mapping[str, str], report: Mapping[str, Any] | None) -> dict[str, Any]:
    """{"feature_columns": the logged list, or the evaluation report's when the list was too long
    for a param}, a wide one named by family (tools/name_families.py)."""
    names = parsed(params["feature_columns"]) if "feature_columns" in params else ((report or {}).get("data") or {}).get("features")
    return compact("feature_columns", names) if isinstance(names, list) else {"feature_columns": names}


def load_detail(tracking: Runs, run_artifacts: JsonArtifacts | None, run: Mapping[str, Any], experiment: str, primary: str, reveal: bool = False) -> dict[str, Any]:
    """`detail` with the run's artifact list and evaluation report read from MLflow (blocking)."""
    report = run_artifacts.read_json(run["run_id"], REPORT_ARTIFACT) if run_artifacts is not None else None
    view = detail(run, experiment, primary, tracking.list_artifacts(run["run_id"]), report if isinstance(report, Mapping) else None, reveal)
    # A detached run: its progress, and once FINISHED the result its call would have returned.
    finished = run_artifacts is not None and is_detached(run) and run["status"] == "FINISHED"
    return view | detached_view(run, run_artifacts.read_json(run["run_id"], RESULT_ARTIFACT) if finished else None, view)


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def payload_sections(report: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence an agent sees in run_experiment's result, read back from the (rounded) report."""
    return {"columns": report.get("columns"), "split": report.get("split_fractions"), "leakage": report.get("leakage"), "fairness": report.get("fairness")}
