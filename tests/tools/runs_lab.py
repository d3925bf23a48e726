"""Runs for the read-only run tools and resources, made quickly in a real sqlite MLflow store.

`logged_run` logs a run the way run_experiment does: its tags and params come from the same
functions (tools/experiment_report.run_tags, run_params) and its metrics use the same names, so the
views are tested against what training really records, without training. `trained_run` is one real
run_experiment call (real CAS dataset, real bwrap children) for what only training writes: the
evaluation report and the artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import yaml
from mcp import Client

from policies import Principal
from server.app import build_server
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import Ports, build_ports
from server.settings import Settings, load_settings
from server.workspace import init_workspace
from tools.base import CallContext
from tools.experiment_report import run_params, run_tags

EXPERIMENT = "demo-bank/credit-default"
REASONING = {"hypothesis_category": "baseline", "change_description": "Baseline logistic regression on the credit data.", "expected_effect": "A reference roc_auc for later changes."}
PROVENANCE = {"git_commit": "a" * 40, "git_dirty": False, "uv_lock_sha256": "b" * 64, "feature_pipeline_hash": "c" * 64, "config_hash": "d" * 64, "standards_sha256": "e" * 64}


@dataclass
class RunsLab:
    workspace: Path
    settings: Settings
    ports: Ports
    experiment_id: str

    async def call(self, tool: str, arguments: dict[str, Any], settings: Settings | None = None) -> tuple[bool, dict[str, Any]]:
        async with Client(build_server(settings or self.settings, self.ports)) as client:
            result = await client.call_tool(tool, arguments)
        return result.is_error, result.structured_content

    def config(self) -> dict[str, Any]:
        return yaml.safe_load((self.workspace / "configs/experiment.yaml").read_text())


def use_quick_run(workspace: Path, content_hash: str) -> None:
    """Point the workspace's experiment.yaml at `content_hash` with a quick model (logistic
    regression, few bootstrap samples); the caller commits."""
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = content_hash
    document["model"] = {"type": "logistic_regression", "params": {}}
    document["evaluation"]["bootstrap_samples"] = 20
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def build_runs_lab(root: Path) -> RunsLab:
    """A workspace with a CAS dataset configured (logistic regression, few bootstrap samples)."""
    workspace = init_workspace(root / "ws")
    content_hash = import_files(workspace, [write_credit_csv(root / "credit.csv", rows=300)]).added.content_hash
    use_quick_run(workspace, content_hash)
    GitRepo(workspace).commit_all("use the credit dataset")
    settings = load_settings(workspace, transport="memory")
    ports = build_ports(settings)
    return RunsLab(workspace, settings, ports, ports.tracking.get_or_create_experiment(EXPERIMENT))


def trained_result(lab: RunsLab) -> dict[str, Any]:
    """One real run_experiment call; returns its result."""
    is_error, content = anyio.run(lab.call, "run_experiment", {"reasoning": REASONING})
    assert not is_error, content
    return content


def trained_run(lab: RunsLab) -> str:
    """One real run_experiment call; returns its run id."""
    return trained_result(lab)["run_id"]


SEALED_OFFSET = -0.0123  # the lab's sealed test figures differ from its validation ones by this


def _with_intervals(prefix: str, values: dict[str, float], ci: float) -> dict[str, float]:
    logged = {f"{prefix}{m}": v for m, v in values.items()}
    return logged | {f"{prefix}{m}_ci95_low": v - ci for m, v in values.items()} | {f"{prefix}{m}_ci95_high": v + ci for m, v in values.items()}


def _test_metrics(primary: float, ci: float) -> dict[str, float]:
    """Validation (val_*, what agents see) at `primary`; sealed test figures (test_*, baseline_*) apart."""
    values = {"roc_auc": primary, "pr_auc": primary - 0.3, "f1": 0.4, "log_loss": 0.5, "brier": 0.18}
    sealed = {m: v + SEALED_OFFSET for m, v in values.items()}
    logged = _with_intervals("val_", values, ci) | _with_intervals("test_", sealed, ci)
    baselines = {f"val_baseline_{name}_{m}": v - 0.05 for name in ("logistic_regression", "class_prior") for m, v in values.items()}
    baselines |= {f"baseline_{name}_{m}": v - 0.05 for name in ("logistic_regression", "class_prior") for m, v in sealed.items()}
    return {**logged, **baselines, **{f"cv_{m}_mean": v for m, v in values.items()}, "metric_delta": 0.0, "n_rows": 300, "n_columns": 12, "n_features": 8}


def logged_run(lab: RunsLab, *, primary: float = 0.75, ci: float = 0.02, outcome: str = "neutral", status: str = "FINISHED", principal: str = "codex",
               config: dict[str, Any] | None = None, dirty: bool = False, run_kind: str = "experiment", experiment_id: str | None = None,
               extra_params: dict[str, Any] | None = None) -> str:  # fmt: skip
    """A run logged with run_experiment's own tag and param functions and its metric names."""
    tracking = lab.ports.tracking
    standards = lab.ports.standards.policy_config()["standards"]
    ctx = CallContext(principal=Principal(principal, "agent"), transport="memory", ports=lab.ports, config={"standards": standards})
    request = SimpleNamespace(agent_model="test-model", tokens_used=1200, estimated_cost=0.25)
    document = config or lab.config()
    facts = {"sandbox_mode": "bwrap", "run_kind": run_kind, "provenance": {**PROVENANCE, "git_dirty": dirty}, "config": document, "feature_columns": ["income", "age"],
             "reasoning": REASONING, "dataset": SimpleNamespace(manifest={"content_hash": document["data"]["dataset"], "schema_hash": "f" * 64})}  # fmt: skip
    run_id = tracking.start_run(experiment_id or lab.experiment_id, run_tags(request, facts, ctx), run_name=document["experiment"]["name"])
    tracking.log_params(run_id, {**run_params(request, facts, ctx), **(extra_params or {})})
    if status == "FINISHED":
        tracking.log_metrics(run_id, _test_metrics(primary, ci))
        tracking.set_tags(run_id, {"outcome": outcome, "gates_passed": "true" if primary >= 0.7 else "false"})
    tracking.end_run(run_id, status, None if status == "FINISHED" else "sandbox.child_error: boom")
    return run_id


def foreign_run(lab: RunsLab) -> str:
    """A run of another project's experiment in the same MLflow store."""
    other = lab.ports.tracking.get_or_create_experiment("other-bank/other-project")
    return logged_run(lab, experiment_id=other)


def human(lab: RunsLab) -> Settings:
    return load_settings(lab.workspace, transport="memory", local_principal="alice", local_role="human")
