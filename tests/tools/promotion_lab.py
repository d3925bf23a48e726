"""A governed workspace with one real, promotable run, shared by the promote, reproduce and rollback
tests: a real copier workspace and git repository, a CAS dataset, a commit on a feature branch,
run_experiment in real bwrap children with sqlite MLflow, and open_pr through the local provider.

Variants of that run (a failed one, a dirty one, one with a lower metric ...) are real MLflow runs
cloned from it with a few params, metrics or tags changed, and its model artifact copied, so each
promotion gate can be failed on purpose without training again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client

from server.app import build_server
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.git import GitRepo
from server.ports import Ports, build_ports
from server.settings import Settings, load_settings
from server.tracking_values import as_text
from server.workspace import init_workspace
from tools.provenance import config_hash, parse_run_files, run_files_param, sha256_bytes
from tools.run_pins import unflatten

REASONING = {"hypothesis_category": "feature_engineering", "change_description": "Tuned feature engineering on the governed credit data.", "expected_effect": "A roc_auc at least as good as the baseline."}
MODEL = "demo-bank-credit-default"
NOT_CLONED = ("mlflow.", "mlgate.reproduction", "mlgate.seed_run_ids", "reproduced", "promoted", "mlgate.promoted")


@dataclass
class Lab:
    workspace: Path
    settings: Settings
    ports: Ports
    repo: GitRepo
    run_id: str
    dataset_hash: str
    spare_hash: str
    no_pr_commit: str

    @property
    def client(self) -> Any:
        return self.ports.tracking.client

    def human(self, name: str = "alice") -> Settings:
        return load_settings(self.workspace, transport="memory", local_principal=name, local_role="human")


def _configure(workspace: Path, dataset_hash: str) -> None:
    path = workspace / "configs/experiment.yaml"
    document = yaml.safe_load(path.read_text())
    document["data"]["dataset"] = dataset_hash
    document["model"] = {"type": "logistic_regression", "params": {}}
    document["evaluation"]["bootstrap_samples"] = 20
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _commit_on(repo: GitRepo, branch: str, text: str) -> str:
    repo.run("checkout", "-q", "-B", branch, "main")
    features = repo.path / "src/features.py"
    features.write_text(features.read_text() + text)
    return repo.commit_all(f"features on {branch}")


def build_lab(root: Path, **overrides: Any) -> Lab:
    """The workspace, its real run (made on agent/lab, PR opened) and the working tree back on main.
    `overrides` are settings (a tracking_uri, for a tracking server)."""
    workspace = init_workspace(root / "ws")
    dataset_hash = import_files(workspace, [write_credit_csv(root / "credit.csv", rows=400)]).added.content_hash
    spare_hash = import_files(workspace, [write_credit_csv(root / "spare.csv", rows=120, seed=3)]).added.content_hash
    _configure(workspace, dataset_hash)
    repo = GitRepo(workspace)
    repo.commit_all("use the credit dataset")
    no_pr_commit = _commit_on(repo, "agent/no-pr", "\n# work nobody opened a PR for\n")
    _commit_on(repo, "agent/lab", "\n# tuned for the lab\n")
    settings = load_settings(workspace, transport="memory", **overrides)
    ports = build_ports(settings)
    run_id = anyio.run(_run_and_open_pr, settings, ports)
    repo.run("checkout", "-q", "main")
    return Lab(workspace, settings, ports, repo, run_id, dataset_hash, spare_hash, no_pr_commit)


async def _run_and_open_pr(settings: Settings, ports: Ports) -> str:
    async with Client(build_server(settings, ports)) as client:
        run = await client.call_tool("run_experiment", {"reasoning": REASONING})
        assert not run.is_error, run.structured_content
        run_id = run.structured_content["run_id"]
        pr = await client.call_tool("open_pr", {"run_id": run_id, "title": "Tuned features"})
        assert not pr.is_error, pr.structured_content
        return run_id


async def call(lab: Lab, tool: str, arguments: dict[str, Any], settings: Settings | None = None) -> tuple[bool, dict[str, Any]]:
    """(is_error, structured content) of one call through the real server, in memory."""
    async with Client(build_server(settings or lab.settings, lab.ports)) as client:
        result = await client.call_tool(tool, arguments)
    return result.is_error, result.structured_content


def clone_run(lab: Lab, run_id: str, *, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
              tags: dict[str, str] | None = None, status: str = "FINISHED", model: bool = True, vouch: bool = True,
              experiment_id: str | None = None) -> str:  # fmt: skip
    """A new FINISHED (or `status`) run in the same experiment (or `experiment_id`) with the run's params, metrics and
    tags, overridden where given, and a copy of its model artifact unless `model` is False. Its
    metrics are chained as run_experiment chains a finished run's (server/audit/run_metrics.py)
    unless `vouch` is False: then it is a run copied into the store by hand."""
    from mlflow.entities import Metric, Param, RunTag

    client, original = lab.client, lab.client.get_run(run_id)
    kept_tags = {k: v for k, v in original.data.tags.items() if not k.startswith(NOT_CLONED)}
    clone = client.create_run(experiment_id or original.info.experiment_id, tags={**kept_tags, **(tags or {})}).info.run_id
    all_params = {**original.data.params, **(params or {})}
    names = sorted(all_params)
    for start in range(0, len(names), 100):
        client.log_batch(clone, params=[Param(k, all_params[k]) for k in names[start : start + 100]])
    values = {**original.data.metrics, **(metrics or {})}
    client.log_batch(clone, metrics=[Metric(k, v, 0, 0) for k, v in sorted(values.items())], tags=[RunTag("mlgate.clone_of", run_id)])
    if model:
        with tempfile.TemporaryDirectory() as scratch:
            local = client.download_artifacts(run_id, "model", scratch)
            client.log_artifacts(clone, local, "model")
    if vouch:
        lab.ports.run_metrics.record(clone, values, all_params)
    client.set_terminated(clone, status)
    return clone


def foreign_clone(lab: Lab, run_id: str, **changes: Any) -> str:
    """A copy of the run in another project's experiment of the same store (a shared tracking server)."""
    return clone_run(lab, run_id, experiment_id=lab.ports.tracking.get_or_create_experiment("other-bank/other-project"), **changes)


def commit_params(lab: Lab, run_id: str, commit: str) -> dict[str, str]:
    """`git_commit` moved to `commit`, with the run's recorded file hashes of the files there (so
    only the commit changes, not whether the run matches it)."""
    used = parse_run_files(lab.client.get_run(run_id).data.params.get("run_files_sha256")) or {}
    blobs = {path: lab.repo.blob_at(commit, path) or b"" for path in used}
    return {"git_commit": commit, "run_files_sha256": run_files_param({path: sha256_bytes(blob) for path, blob in blobs.items()})}


def config_params(lab: Lab, run_id: str, **changes: Any) -> dict[str, str]:
    """`config.*` params with dotted-path changes (a__b = value) and the matching config_hash."""
    params = lab.client.get_run(run_id).data.params
    document = unflatten(params)
    changed = {}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = document
        for part in parents:
            node = node[part]
        node[leaf] = value
        changed["config." + ".".join([*parents, leaf])] = as_text(value)
    return {**changed, "config_hash": config_hash(document)}


@contextmanager
def tampered(lab: Lab, content_hash: str) -> Iterator[Path]:
    """The dataset's data file with one byte changed for the block (restored after)."""
    directory = lab.workspace / "data" / "shadow" / content_hash
    data_file = next(p for p in sorted(directory.iterdir()) if p.name != "manifest.tsv")
    original = data_file.read_bytes()
    os.chmod(directory, 0o755)
    os.chmod(data_file, 0o644)
    data_file.write_bytes(original.replace(b"salaried", b"Salaried", 1))
    try:
        yield data_file
    finally:
        data_file.write_bytes(original)
        os.chmod(data_file, 0o444)
        os.chmod(directory, 0o555)


def reset_registry(lab: Lab) -> None:
    """No registered model, no alias history, no approvals: each test starts from there."""
    from mlflow.exceptions import MlflowException

    try:
        lab.client.delete_registered_model(MODEL)
    except MlflowException:
        pass
    shutil.rmtree(lab.settings.state_dir / "registry", ignore_errors=True)
    shutil.rmtree(lab.settings.state_dir / "approvals", ignore_errors=True)


def build_candidate_lab(root: Path) -> Lab:
    """build_lab, with its run promoted to candidate (a model card exists)."""
    import anyio

    built = build_lab(root)
    is_error, content = anyio.run(call, built, "promote", {"run_id": built.run_id, "alias": "candidate"})
    assert not is_error, content
    return built
