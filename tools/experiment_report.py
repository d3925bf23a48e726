"""What a run records and returns: MLflow params and tags (Tiers 1-3), server-side metrics with
confidence intervals, baselines, the comparison with the best prior run, the gate receipt and the
artifacts (model, predictions, evaluation report, drift baseline, bundle manifest)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tools.base import CallContext
from tools.drift import drift_baseline
from tools.evaluation import (
    LOWER_IS_BETTER, bootstrap_ci, build_report, compare_to_prior, compute_metrics, gate_receipt, gates_passed,
    prior_baseline, slice_metrics, summarize_folds,
)

RUN_KIND_TAG = "mlgate.run_kind"
TIER1_KEYS = ("git_commit", "uv_lock_sha256", "feature_pipeline_hash", "config_hash", "standards_sha256")


def run_tags(request: Any, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    standards = ctx.config["standards"]
    tags = {"client_name": standards["client_name"], "project_name": standards["project_name"], "principal": ctx.principal.name, "role": ctx.principal.role, "transport": ctx.transport, "mlgate.sandbox_mode": facts["sandbox_mode"], RUN_KIND_TAG: facts.get("run_kind", "experiment")}
    return {**tags, **({"agent_model": request.agent_model} if request.agent_model else {})}


def run_params(request: Any, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Tier 1 (provenance, every hyperparameter, seed) and Tier 3 (agent cost, reasoning)."""
    provenance, manifest, config = facts["provenance"], facts["dataset"].manifest, facts["config"]
    params: dict[str, Any] = {key: provenance[key] for key in TIER1_KEYS}
    if "run_files_sha256" in provenance:  # what open_pr and promote re-check against the commit
        params["run_files_sha256"] = provenance["run_files_sha256"]
    params.update(git_dirty=str(bool(provenance["git_dirty"])).lower(), dataset_content_hash=manifest["content_hash"], dataset_schema_hash=manifest["schema_hash"], seed=config["experiment"]["seed"])
    params["config"] = config
    params["feature_columns"] = facts["feature_columns"]
    params["reasoning"] = facts["reasoning"] or {}
    params.update({k: v for k, v in (("tokens_used", request.tokens_used), ("estimated_cost", request.estimated_cost), ("agent_model", request.agent_model)) if v is not None})
    return params


def _test_section(results: list[Any], data: dict[str, Any], plan: Any, metrics_wanted: list[str], samples: int) -> dict[str, Any]:
    final = next(r for r in results if r.stage.name == "final")
    labels = data["labels"][plan.test]
    values = compute_metrics(labels, final.scores)
    ci = bootstrap_ci(labels, final.scores, n_samples=samples, seed=data["seed"]) if samples else {"intervals": {}}
    return {m: {"value": values[m], "ci95": (ci["intervals"] or {}).get(m)} for m in metrics_wanted} | {"_all": values, "_bootstrap": ci}


def _baselines(results: list[Any], data: dict[str, Any], plan: Any) -> dict[str, Any]:
    final = next(r for r in results if r.stage.name == "final")
    development = final.stage.train
    return {
        "logistic_regression": compute_metrics(data["labels"][plan.test], final.baseline_scores),
        "class_prior": prior_baseline(data["labels"][development], data["labels"][plan.test])["metrics"],
    }


def _slices(results: list[Any], data: dict[str, Any], plan: Any, standards: dict[str, Any]) -> dict[str, Any]:
    final = next(r for r in results if r.stage.name == "final")
    frame = data["frame"]
    attributes = {a: frame.iloc[plan.test][a].to_numpy() for a in standards.get("protected_attributes") or [] if a in frame.columns}
    return slice_metrics(data["labels"][plan.test], final.scores, attributes)


def _folds(results: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    folds = [r for r in results if r.stage.name.startswith("fold-")]
    return summarize_folds([compute_metrics(data["labels"][r.stage.evaluate], r.scores) for r in folds])


def _comparison(ctx: CallContext, experiment: str, run_id: str, primary: str, test: dict[str, Any]) -> dict[str, Any]:
    # Reproductions and seed re-runs are checks of a run, not experiments to beat.
    best = ctx.ports.tracking.best_prior_run(experiment, f"test_{primary}", exclude_run_id=run_id, lower_is_better=primary in LOWER_IS_BETTER, extra_filter=f"tags.`{RUN_KIND_TAG}` = 'experiment'")
    return compare_to_prior(primary, test[primary]["value"], test[primary]["ci95"], best)


def _hardware(results: list[Any], ctx: CallContext) -> dict[str, Any]:
    final = next(r for r in results if r.stage.name == "final").child
    host = ctx.ports.environment.hardware()
    return {**host, "device": final.device, "gpu_name": final.gpu_name, "peak_gpu_memory_bytes": final.peak_gpu_memory_bytes,
            "effective_batch_size": final.effective_batch_size, "library_versions": final.library_versions}


def _timings(results: list[Any]) -> dict[str, float]:
    final = next(r for r in results if r.stage.name == "final").child
    return {"train_seconds_total": float(sum(r.child.train_seconds for r in results)), "train_seconds_final": final.train_seconds, "inference_latency_ms_per_row": final.inference_latency_ms_per_row}


def _log_metrics(ctx: CallContext, run_id: str, sections: dict[str, Any]) -> None:
    tracking = ctx.ports.tracking
    tracking.log_metrics(run_id, {f"test_{m}": v for m, v in sections["test"]["_all"].items()})
    tracking.log_metrics(run_id, {f"test_{m}_ci95_{side}": (iv or {}).get(side) for m, iv in sections["test"]["_bootstrap"]["intervals"].items() for side in ("low", "high")} if sections["test"]["_bootstrap"]["intervals"] else {})
    tracking.log_metrics(run_id, {f"cv_{m}_mean": s["mean"] for m, s in sections["folds"].items()})
    for name, values in sections["baselines"].items():
        tracking.log_metrics(run_id, {f"baseline_{name}_{m}": v for m, v in values.items()})
    tracking.log_metrics(run_id, {"metric_delta": sections["comparison"]["metric_delta"], **sections["timings"], "n_rows": sections["data"]["rows"], "n_columns": sections["data"]["columns"], "n_features": len(sections["data"]["features"])})


def _artifacts(ctx: CallContext, run_id: str, sections: dict[str, Any], results: list[Any], data: dict[str, Any], plan: Any) -> list[str]:
    tracking, final = ctx.ports.tracking, next(r for r in results if r.stage.name == "final")
    refs = [tracking.log_json_artifact(run_id, "evaluation_report.json", sections["report"]),
            tracking.log_json_artifact(run_id, "gate_receipt.json", {"gates": sections["gates"], "passed": sections["gates_passed"]}),
            tracking.log_json_artifact(run_id, "drift_baseline.json", drift_baseline(data["frame"].iloc[final.stage.train][data["facts"]["feature_columns"]])),
            tracking.log_json_artifact(run_id, "split.json", plan.description)]
    with tempfile.TemporaryDirectory() as tmp:
        predictions = Path(tmp) / "test_predictions.parquet"
        pd.DataFrame({"__row_id__": plan.test.astype("int64"), "score": final.scores, "label": data["labels"][plan.test]}).to_parquet(predictions, index=False)
        refs.append(tracking.log_artifact_file(run_id, predictions))
        model = ctx.ports.rundirs.copy_model(final.directory, Path(tmp) / "model")
        refs.extend(tracking.log_artifact_file(run_id, f, "model" if f.parent == model else f"model/{f.parent.relative_to(model)}") for f in sorted(model.rglob("*")) if f.is_file())
    return refs


def _bundle(facts: dict[str, Any], sections: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    manifest = facts["dataset"].manifest
    return {
        "artifacts": sorted(refs), "evaluation_report": "evaluation_report.json", "gate_receipt": "gate_receipt.json",
        "feature_schema": {"features": facts["feature_columns"], "categorical": facts["categorical_columns"]},
        "dataset_manifest": {k: manifest[k] for k in ("content_hash", "schema_hash", "files", "rows", "columns") if k in manifest},
        "config_hash": facts["provenance"]["config_hash"], "feature_pipeline_hash": facts["provenance"]["feature_pipeline_hash"],
    }


def finish_report(ctx: CallContext, experiment: str, run_id: str, plan: Any, results: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    """Compute everything from predictions and labels, log it, and build the tool result."""
    facts, config, standards = data["facts"], data["facts"]["config"], ctx.config["standards"]
    primary = config["evaluation"]["primary_metric"]
    sections: dict[str, Any] = {"test": _test_section(results, data, plan, config["evaluation"]["metrics"], config["evaluation"]["bootstrap_samples"])}
    sections.update(folds=_folds(results, data), baselines=_baselines(results, data, plan), slices=_slices(results, data, plan, standards), timings=_timings(results))
    sections["comparison"] = _comparison(ctx, experiment, run_id, primary, sections["test"])
    sections["gates"] = gate_receipt(standards["gates"], {"primary_metric": sections["test"]["_all"][standards["gates"].get("primary_metric", primary)], "baseline_primary_metric": sections["baselines"]["logistic_regression"][standards["gates"].get("primary_metric", primary)]})
    sections["gates_passed"] = gates_passed(sections["gates"])
    sections["data"] = {"rows": int(len(data["frame"])), "columns": int(data["frame"].shape[1]), "features": facts["feature_columns"], "test_rows": int(len(plan.test))}
    sections["report"] = build_report({k: sections[k] for k in ("test", "folds", "baselines", "slices", "comparison", "gates", "data")} | {"split": plan.description, "run_id": run_id})
    _log_metrics(ctx, run_id, sections)
    ctx.ports.tracking.log_params(run_id, {"hardware": _hardware(results, ctx)})
    refs = _artifacts(ctx, run_id, sections, results, data, plan)
    refs.append(ctx.ports.tracking.log_json_artifact(run_id, "bundle_manifest.json", _bundle(facts, sections, refs)))
    ctx.ports.tracking.set_tags(run_id, {"outcome": sections["comparison"]["outcome"], "gates_passed": str(sections["gates_passed"]).lower()})
    return _payload(run_id, facts, sections, refs)


def _payload(run_id: str, facts: dict[str, Any], sections: dict[str, Any], refs: list[str]) -> dict[str, Any]:
    report = sections["report"]
    return {
        "run_id": run_id, "status": "FINISHED",
        "metrics": {k: v for k, v in report["test"].items() if not k.startswith("_")},
        "cv_metrics": {m: {"mean": s["mean"], "std": s["std"]} for m, s in report["folds"].items()},
        "baseline_metrics": report["baselines"], "metric_delta": report["comparison"]["metric_delta"],
        "best_prior_run_id": report["comparison"]["best_prior_run_id"], "outcome": report["comparison"]["outcome"],
        "gate_receipt": {"gates": report["gates"], "passed": sections["gates_passed"]},
        "dataset_hash": facts["dataset"].manifest["content_hash"], "commit": facts["provenance"]["git_commit"],
        "dirty": bool(facts["provenance"]["git_dirty"]), "sandbox_mode": facts["sandbox_mode"], "artifacts": sorted(refs),
    }
