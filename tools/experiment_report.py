"""What a run records and returns: MLflow params and tags (Tiers 1-3), server-side metrics with
confidence intervals, baselines, the comparison with the best prior run, the gate receipt and the
artifacts (model, predictions, evaluation report, drift baseline, bundle manifest)."""

from __future__ import annotations

import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tools.base import CallContext
from tools.contracts import validated
from tools import run_evidence as evidence
from tools.drift import drift_baseline
from tools.evaluation import bootstrap_ci, build_report, compare_to_prior, compute_metrics, prior_baseline, summarize_folds
from tools.gates import gate_receipt, gates_passed
from tools.metric_names import LOWER_IS_BETTER
from tools.paired import as_metrics, paired_improvements
from tools.provenance import MAX_PARAM_CHARS, canonical_json, feature_columns_sha256
from tools.run_views import RUN_KIND_TAG, payload_sections
from tools.sealed import COMPUTED_BY_RUN, SEALED_NOTE, count_query

TIER1_KEYS = ("git_commit", "uv_lock_sha256", "feature_pipeline_hash", "config_hash", "standards_sha256")
# Threads for a run's bootstrap intervals and paired comparisons: they take most of the server's own
# time at 1M rows, and numpy lets go of the GIL in their gathers and counts.
RESAMPLING_THREADS = 4


def run_tags(request: Any, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    standards = ctx.config["standards"]
    tags = {"client_name": standards["client_name"], "project_name": standards["project_name"], "principal": ctx.principal.name, "role": ctx.principal.role, "transport": ctx.transport, "mlgate.sandbox_mode": facts["sandbox_mode"], "mlgate.executor": facts.get("executor_backend", "local"), RUN_KIND_TAG: facts.get("run_kind", "experiment")}
    return {**tags, **({"agent_model": request.agent_model} if request.agent_model else {})}


def run_params(request: Any, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """Tier 1 (provenance, every hyperparameter, seed) and Tier 3 (agent cost, reasoning)."""
    provenance, manifest, config = facts["provenance"], facts["dataset"].manifest, facts["config"]
    params: dict[str, Any] = {key: provenance[key] for key in TIER1_KEYS}
    if "run_files_sha256" in provenance:  # what open_pr and promote re-check against the commit
        params["run_files_sha256"] = provenance["run_files_sha256"]
    params.update(git_dirty=str(bool(provenance["git_dirty"])).lower(), dataset_content_hash=manifest["content_hash"], dataset_schema_hash=manifest["schema_hash"], seed=config["experiment"]["seed"])
    params["config"] = config
    params.update(facts.get("reproduction") or {})  # which run a reproduce re-run re-runs, vouched with the rest
    params.update(feature_params(facts["feature_columns"]))
    # outcome and metric_delta are logged once the run has measured them (_reasoning_result).
    params["reasoning"] = {k: v for k, v in (facts["reasoning"] or {}).items() if k not in ("outcome", "metric_delta")}
    params.update({k: v for k, v in (("tokens_used", request.tokens_used), ("estimated_cost", request.estimated_cost), ("agent_model", request.agent_model)) if v is not None})
    return params


def feature_params(columns: list[str]) -> dict[str, Any]:
    """The feature columns as params: their count and hash always, the list itself when it fits
    in one MLflow param (400 bureau attributes do not); the evaluation report always has the list."""
    fits = {"feature_columns": columns} if len(canonical_json(columns)) <= MAX_PARAM_CHARS else {}
    return {"feature_count": len(columns), "feature_columns_sha256": feature_columns_sha256(columns), **fits}


def _final(results: list[Any]) -> Any:
    return next(r for r in results if r.stage.name == "final")


def _folds_of(results: list[Any]) -> list[Any]:
    return [r for r in results if r.stage.name.startswith("fold-")]


def _measured(labels: np.ndarray, scores: np.ndarray, metrics_wanted: list[str], samples: int, seed: int) -> dict[str, Any]:
    values = compute_metrics(labels, scores)
    ci = bootstrap_ci(labels, scores, n_samples=samples, seed=seed) if samples else {"intervals": {}}
    return {m: {"value": values[m], "ci95": (ci["intervals"] or {}).get(m)} for m in metrics_wanted} | {"_all": values, "_bootstrap": ci}


def _test_section(results: list[Any], data: dict[str, Any], plan: Any, metrics_wanted: list[str], samples: int) -> dict[str, Any]:
    """Sealed: measured on the held-out test rows, stored for humans, never shown to agents."""
    return _measured(data["labels"][plan.test], _final(results).scores, metrics_wanted, samples, data["seed"])


def _validation_rows(results: list[Any], data: dict[str, Any]) -> dict[str, np.ndarray | None]:
    """Out-of-fold predictions: every validation row scored by the model that did not train on it."""
    folds = _folds_of(results)
    rows = np.concatenate([r.stage.evaluate for r in folds])
    prior = np.concatenate([np.full(len(r.stage.evaluate), float(data["labels"][r.stage.train].mean())) for r in folds])
    logistic = None if any(r.baseline_scores is None for r in folds) else np.concatenate([r.baseline_scores for r in folds])
    return {"rows": rows, "labels": data["labels"][rows], "scores": np.concatenate([r.scores for r in folds]), "class_prior": prior, "logistic_regression": logistic}


def _validation_section(oof: dict[str, Any], data: dict[str, Any], metrics_wanted: list[str], samples: int) -> dict[str, Any]:
    """The selection metrics: out-of-fold validation predictions, with 95% bootstrap intervals."""
    return _measured(oof["labels"], oof["scores"], metrics_wanted, samples, data["seed"]) | {"_rows": int(len(oof["rows"]))}


def _validation_baselines(oof: dict[str, Any]) -> dict[str, Any]:
    found = {"class_prior": compute_metrics(oof["labels"], oof["class_prior"])}
    if oof["logistic_regression"] is not None:
        found["logistic_regression"] = compute_metrics(oof["labels"], oof["logistic_regression"])
    return found


def _baselines(results: list[Any], data: dict[str, Any], plan: Any) -> dict[str, Any]:
    """Sealed: the baselines scored on the test rows."""
    final = _final(results)
    return {
        "logistic_regression": compute_metrics(data["labels"][plan.test], final.baseline_scores),
        "class_prior": prior_baseline(data["labels"][final.stage.train], data["labels"][plan.test])["metrics"],
    }


def _paired(labels: np.ndarray, scores: np.ndarray, references: dict[str, np.ndarray | None], primary: str, ctx: CallContext, seed: int) -> dict[str, Any]:
    """Paired-bootstrap comparisons on the same rows: lift over the logistic baseline (primary
    metric) and calibration gain over the class prior (the configured calibration metric)."""
    promotion = ctx.config["policy"]["promotion"]
    options = {"n_samples": int(promotion["paired_bootstrap_samples"]), "seed": seed, "confidence": float(promotion["gate_confidence"])}
    comparisons = {"calibration_paired": (references["class_prior"], str(promotion["calibration_metric"]))}
    if references.get("logistic_regression") is not None:
        comparisons = {"baseline_paired": (references["logistic_regression"], primary)} | comparisons
    return paired_improvements(labels, scores, comparisons, **options)  # one set of resamples for both


def gates_config(standards: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """The standards' gates plus the calibration gate every workspace gets (configs/policy.yaml)."""
    return {**standards["gates"], "calibration_vs_prior": policy["promotion"]["calibration_margin"]}


def _receipt(ctx: CallContext, primary: str, metrics: dict[str, Any], baselines: dict[str, Any], paired: dict[str, Any]) -> list[dict[str, Any]]:
    gates = gates_config(ctx.config["standards"], ctx.config["policy"])
    metric = gates.get("primary_metric", primary)
    observed = {"primary_metric": metrics[metric], "baseline_primary_metric": (baselines.get("logistic_regression") or {}).get(metric), **paired}
    receipt = gate_receipt(gates, observed)
    if "logistic_regression" not in baselines:
        return [_unmeasured_lift(e) if e["gate"] == "min_lift_over_baseline" else e for e in receipt]
    return receipt


def _unmeasured_lift(found: dict[str, Any]) -> dict[str, Any]:
    return {**found, "status": "SKIPPED", "observed": None, "reason": "the logistic baseline was not scored on the validation rows; promote checks this gate on the sealed test set"}


def _slices(results: list[Any], data: dict[str, Any], plan: Any, ctx: CallContext) -> dict[str, Any]:
    """Sealed: fairness slices of the test rows (binned, size-checked: tools/fairness.py)."""
    return evidence.slices(data["frame"], plan.test, data["labels"][plan.test], _final(results).scores, ctx.config)


def _folds(results: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    return summarize_folds([compute_metrics(data["labels"][r.stage.evaluate], r.scores) for r in _folds_of(results)])


def _comparison(ctx: CallContext, experiment: str, run_id: str, primary: str, validation: dict[str, Any], dataset_hash: str) -> dict[str, Any]:
    # Selection is on validation metrics only; reproductions and seed re-runs are checks of a run,
    # not experiments to beat.
    best = ctx.ports.tracking.best_prior_run(experiment, f"val_{primary}", exclude_run_id=run_id, lower_is_better=primary in LOWER_IS_BETTER, extra_filter=f"tags.`{RUN_KIND_TAG}` = 'experiment' and {evidence.best_prior_filter(dataset_hash)}")
    return compare_to_prior(primary, validation[primary]["value"], validation[primary]["ci95"], best) | {"basis": "validation"}


def _hardware(results: list[Any], ctx: CallContext) -> dict[str, Any]:
    final = next(r for r in results if r.stage.name == "final").child
    host = ctx.ports.environment.hardware()
    backend = getattr(ctx.ports.sandbox, "backend", "local")
    # on Ray the child ran on a worker node: this host's CPU and memory are the server's, said so
    where = host if backend == "local" else {"executor": backend, "server": host}
    return {**where, "device": final.device, "gpu_name": final.gpu_name, "peak_gpu_memory_bytes": final.peak_gpu_memory_bytes,
            "batch_size": final.batch_size, "effective_batch_size": final.effective_batch_size, "library_versions": final.library_versions}


def _timings(results: list[Any]) -> dict[str, float]:
    final = next(r for r in results if r.stage.name == "final").child
    return {"train_seconds_total": float(sum(r.child.train_seconds for r in results)), "train_seconds_final": final.train_seconds, "inference_latency_ms_per_row": final.inference_latency_ms_per_row}


def _interval_metrics(prefix: str, section: dict[str, Any]) -> dict[str, Any]:
    intervals = section["_bootstrap"]["intervals"] or {}
    return {f"{prefix}{m}_ci95_{side}": (iv or {}).get(side) for m, iv in intervals.items() for side in ("low", "high")}


def _log_metrics(ctx: CallContext, run_id: str, sections: dict[str, Any]) -> None:
    ctx.ports.tracking.log_metrics(run_id, _sealed_metrics(sections) | _selection_metrics(sections))  # one write


def _sealed_metrics(sections: dict[str, Any]) -> dict[str, Any]:
    """test_*, baseline_*: for humans in MLflow; the agent-facing views never show them."""
    found = {f"test_{m}": v for m, v in sections["test"]["_all"].items()} | _interval_metrics("test_", sections["test"])
    for name, values in sections["baselines"].items():
        found |= {f"baseline_{name}_{m}": v for m, v in values.items()}
    return found | {k: v for name, paired in sections["test_paired"].items() for k, v in as_metrics(f"test_{name}", paired).items()}


def _selection_metrics(sections: dict[str, Any]) -> dict[str, Any]:
    """Validation rows only, the folds' spread, timings and the data's shape."""
    found = {f"val_{m}": v for m, v in sections["validation"]["_all"].items()} | _interval_metrics("val_", sections["validation"])
    for name, values in sections["validation_baselines"].items():
        found |= {f"val_baseline_{name}_{m}": v for m, v in values.items()}
    folds = sections["folds"]
    found |= {f"cv_{m}_mean": s["mean"] for m, s in folds.items()} | {f"cv_{m}_std": s["std"] for m, s in folds.items() if s["std"] is not None}
    data = sections["data"]
    return found | {"metric_delta": sections["comparison"]["metric_delta"], **sections["timings"], "n_rows": data["rows"], "n_columns": data["columns"], "n_features": len(data["features"])}


def _gate_receipt(sections: dict[str, Any]) -> dict[str, Any]:
    receipt = {"basis": "validation", "gates": sections["gates"], "passed": sections["gates_passed"], "sealed_test": {"gates": sections["test_gates"], "passed": gates_passed(sections["test_gates"])}}
    return validated("gate_receipt", receipt)


def _check_contracts(facts: dict[str, Any], sections: dict[str, Any]) -> None:
    """Every public document of the run matches its contract before the first is logged, so a
    mismatch (a server bug, ContractViolation) leaves no half-written set of artifacts."""
    validated("evaluation_report", sections["report"])
    _gate_receipt(sections)
    validated("model_bundle", _bundle(facts, sections, []))


def _artifacts(ctx: CallContext, run_id: str, sections: dict[str, Any], results: list[Any], data: dict[str, Any], plan: Any) -> list[str]:
    tracking, final = ctx.ports.tracking, next(r for r in results if r.stage.name == "final")
    refs = [tracking.log_json_artifact(run_id, "evaluation_report.json", validated("evaluation_report", sections["report"])),
            tracking.log_json_artifact(run_id, "gate_receipt.json", _gate_receipt(sections)),
            tracking.log_json_artifact(run_id, "drift_baseline.json", drift_baseline(data["frame"].iloc[final.stage.train][data["facts"]["feature_columns"]])),
            tracking.log_json_artifact(run_id, "split.json", plan.description)]
    with tempfile.TemporaryDirectory() as tmp:
        predictions = Path(tmp) / "test_predictions.parquet"
        pd.DataFrame({"__row_id__": plan.test.astype("int64"), "score": final.scores, "label": data["labels"][plan.test]}).to_parquet(predictions, index=False)
        refs.append(tracking.log_artifact_file(run_id, predictions))
        model = ctx.ports.rundirs.copy_model(final.directory, Path(tmp) / "model", data["facts"]["config"]["model"]["type"])
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


def _resampled(pool: ThreadPoolExecutor, ctx: CallContext, plan: Any, results: list[Any], data: dict[str, Any], oof: dict[str, Any]) -> dict[str, Future]:
    """The bootstrap intervals and paired comparisons of both sections, submitted to `pool`."""
    config, gates = data["facts"]["config"]["evaluation"], ctx.config["standards"]["gates"]
    wanted, samples, gate_metric = config["metrics"], config["bootstrap_samples"], gates.get("primary_metric", config["primary_metric"])
    final, test_labels = _final(results), data["labels"][plan.test]
    prior = np.full(len(plan.test), float(data["labels"][final.stage.train].mean()))
    return {
        "validation": pool.submit(_validation_section, oof, data, wanted, samples),
        "test": pool.submit(_test_section, results, data, plan, wanted, samples),
        "test_paired": pool.submit(_paired, test_labels, final.scores, {"logistic_regression": final.baseline_scores, "class_prior": prior}, gate_metric, ctx, data["seed"]),
        "validation_paired": pool.submit(_paired, oof["labels"], oof["scores"], oof, gate_metric, ctx, data["seed"]),
    }


def _sections(ctx: CallContext, experiment: str, run_id: str, plan: Any, results: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    primary = data["facts"]["config"]["evaluation"]["primary_metric"]
    oof = _validation_rows(results, data)
    with ThreadPoolExecutor(max_workers=RESAMPLING_THREADS) as pool:  # the four resampling parts are independent
        resampled = _resampled(pool, ctx, plan, results, data, oof)
        unresampled = {"validation_baselines": _validation_baselines(oof), "folds": _folds(results, data), "baselines": _baselines(results, data, plan), "slices": _slices(results, data, plan, ctx), "timings": _timings(results)}
        found = {name: part.result() for name, part in resampled.items()} | unresampled
    order = ("validation", "validation_baselines", "test", "folds", "baselines", "slices", "timings", "test_paired", "validation_paired")
    sections: dict[str, Any] = {name: found[name] for name in order}
    sections["comparison"] = _comparison(ctx, experiment, run_id, primary, sections["validation"], data["facts"]["dataset"].manifest["content_hash"])
    # Evidence shown to the caller: fairness on the validation rows, split fractions, leakage verdict.
    fairness = evidence.slices(data["frame"], oof["rows"], oof["labels"], oof["scores"], ctx.config)
    sections["evidence"] = evidence.after(data["facts"], plan, sections["validation"]["_all"], fairness, ctx.config)
    sections["gates"] = _receipt(ctx, primary, sections["validation"]["_all"], sections["validation_baselines"], sections["validation_paired"])
    sections["test_gates"] = _receipt(ctx, primary, sections["test"]["_all"], sections["baselines"], sections["test_paired"])
    sections["gates"] += evidence.leakage_gate(sections["evidence"])
    sections["gates_passed"] = gates_passed(sections["gates"])
    sections["data"] = {"rows": int(len(data["frame"])), "columns": int(data["frame"].shape[1]), "features": data["facts"]["feature_columns"], "test_rows": int(len(plan.test)), "validation_rows": sections["validation"]["_rows"]}
    return sections


def _report(sections: dict[str, Any], plan: Any, run_id: str) -> dict[str, Any]:
    """The evaluation report: selection figures at the top level, test figures under `sealed_test`
    (tools/sealed.py keeps that key from agents)."""
    sealed = {"metrics": sections["test"], "baselines": sections["baselines"], "paired": sections["test_paired"], "gates": sections["test_gates"], "slices": sections["slices"]}
    shown = {"validation": sections["validation"], "validation_baselines": sections["validation_baselines"], "validation_paired": sections["validation_paired"]}
    return build_report(shown | {k: sections[k] for k in ("folds", "comparison", "gates", "data")} | evidence.report_sections(sections["evidence"]) | {"split": plan.description, "run_id": run_id, "gates_basis": "validation", "sealed_test": sealed})


def finish_report(ctx: CallContext, experiment: str, run_id: str, plan: Any, results: list[Any], data: dict[str, Any]) -> dict[str, Any]:
    """Compute everything from predictions and labels, log it, and build the tool result."""
    facts = data["facts"]
    sections = _sections(ctx, experiment, run_id, plan, results, data)
    sections["report"] = _report(sections, plan, run_id)
    _check_contracts(facts, sections)
    _log_metrics(ctx, run_id, sections)
    ctx.ports.tracking.log_params(run_id, {"hardware": _hardware(results, ctx), **_reasoning_result(sections["comparison"])})
    refs = _artifacts(ctx, run_id, sections, results, data, plan)
    refs.append(ctx.ports.tracking.log_json_artifact(run_id, "bundle_manifest.json", validated("model_bundle", _bundle(facts, sections, refs))))
    evidence_metrics, evidence_tags = evidence.tracking_records(sections["evidence"])
    ctx.ports.tracking.log_metrics(run_id, evidence_metrics)
    ctx.ports.tracking.set_tags(run_id, {"outcome": sections["comparison"]["outcome"], "gates_passed": str(sections["gates_passed"]).lower(), **evidence_tags})
    queries = count_query(ctx.ports, facts["dataset"].manifest["content_hash"], purpose=COMPUTED_BY_RUN, run_id=run_id, principal=ctx.principal.name)
    return _payload(run_id, facts, sections, refs, queries)


def _reasoning_result(comparison: dict[str, Any]) -> dict[str, Any]:
    """reasoning.outcome / reasoning.metric_delta: logged once known (MLflow params are write-once)."""
    return {"reasoning": {"outcome": comparison["outcome"], "metric_delta": comparison["metric_delta"]}}


def _cv(report: dict[str, Any]) -> dict[str, Any]:
    """`cv_metrics` {metric: {mean, std}}; when no metric has a spread for the same cause (one
    temporal validation window), `cv_std_reason` says it once instead of once per metric."""
    folds = report["folds"]
    windows = {sum(v is not None for v in s.get("values", [])) for s in folds.values()}
    shared = len(windows) == 1 and all(s.get("std") is None and "std_reason" in s for s in folds.values())
    kept = ("mean", "std") if shared else ("mean", "std", "std_reason")
    cv = {"cv_metrics": {m: {k: s[k] for k in kept if k in s} for m, s in folds.items()}}
    if shared:
        cv["cv_std_reason"] = f"std is unknown: {windows.pop()} validation window(s) measured each metric; a spread needs at least 2"
    return cv


def _payload(run_id: str, facts: dict[str, Any], sections: dict[str, Any], refs: list[str], queries: int | None) -> dict[str, Any]:
    """What the caller sees: validation (selection) figures only; the test set stays sealed."""
    report = sections["report"]
    return {
        "run_id": run_id, "status": "FINISHED", "metrics_basis": "validation",
        "metrics": {k: v for k, v in report["validation"].items() if not k.startswith("_")},
        **_cv(report), "baseline_metrics": report["validation_baselines"], "metric_delta": report["comparison"]["metric_delta"],
        "best_prior_run_id": report["comparison"]["best_prior_run_id"], "outcome": report["comparison"]["outcome"],
        "gate_receipt": {"basis": "validation", "gates": report["gates"], "passed": sections["gates_passed"]},
        "test_set": {"sealed": True, "note": SEALED_NOTE, "rows": report["data"]["test_rows"], "queries_of_this_dataset": queries},
        "dataset_hash": facts["dataset"].manifest["content_hash"], "commit": facts["provenance"]["git_commit"],
        "dirty": bool(facts["provenance"]["git_dirty"]), **_dirty(facts["provenance"]), "sandbox_mode": facts["sandbox_mode"],
        "artifacts": sorted(refs), **payload_sections(report),
    }  # fmt: skip


DIRTY_NOTE = (
    "this run was not made from a clean commit: open_pr and promote refuse it (pr.run_clean, promotion.run_clean). "
    "Commit what dirty_files lists (git add, git commit), then run_experiment again without `config` changes for one run"
)


def _dirty(provenance: dict[str, Any]) -> dict[str, Any]:
    """Why a run is dirty, for the agent to fix before the run it means to promote."""
    return {"dirty_files": provenance["dirty_files"], "dirty_note": DIRTY_NOTE} if provenance["git_dirty"] else {}
