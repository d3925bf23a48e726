"""The MLflow adapter against a real sqlite store and local artifact root in a tmp dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.liveness import ProcessIdentity, owner_is_alive
from server.ports import build_ports
from server.settings import Settings
from server.tracking import MlflowTracking, experiment_name
from server.tracking_values import flatten
from tools.errors import GovernanceError, InvalidInput, NotFound


class FixedClock:
    def now(self) -> datetime:
        return datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def tracking(store: Path) -> MlflowTracking:
    # One sqlite store per module: creating its schema is the slow part of MLflow.
    return MlflowTracking(f"sqlite:///{store / 'mlflow.db'}", store / "artifacts", clock=FixedClock())


@pytest.fixture
def experiment(tracking: MlflowTracking, request: pytest.FixtureRequest) -> str:
    return tracking.get_or_create_experiment(experiment_name("acme-bank", request.node.name))


def dead_process_identity() -> ProcessIdentity:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    identity = ProcessIdentity.of(child.pid)
    child.communicate(b"", timeout=30)
    return identity


def test_importing_the_adapter_does_not_import_mlflow() -> None:
    code = "import sys, server.ports, server.tracking; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "False"


def test_experiments_are_created_once_with_artifacts_under_the_state_dir(tracking: MlflowTracking, store: Path) -> None:
    first = tracking.get_or_create_experiment("acme-bank/credit-default")
    assert tracking.get_or_create_experiment("acme-bank/credit-default") == first
    location = tracking.client.get_experiment(first).artifact_location
    assert location.startswith((store / "artifacts").resolve().as_uri())
    assert not Path("mlruns").exists()


def test_a_run_records_tags_params_metrics_and_its_owner(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {"client_name": "acme-bank", "principal": "local-agent"})
    tracking.log_params(run_id, {"model": {"type": "xgboost", "params": {"max_depth": 4, "subsample": 0.8}}, "seed": 42, "features": {"exclude": ["a", "b"], "use_protected_attributes": False}})
    tracking.log_metrics(run_id, {"roc_auc": 0.81, "ci": {"roc_auc": {"low": 0.78, "high": 0.84}}, "pr_auc": None})
    tracking.end_run(run_id, "FINISHED")
    run = tracking.get_run(run_id)
    assert run["status"] == "FINISHED" and run["end_time"] == run["start_time"] == 1714564800000
    assert run["params"] == {"model.type": "xgboost", "model.params.max_depth": "4", "model.params.subsample": "0.8", "seed": "42", "features.exclude": '["a","b"]', "features.use_protected_attributes": "false"}
    assert run["metrics"] == {"roc_auc": 0.81, "ci.roc_auc.low": 0.78, "ci.roc_auc.high": 0.84}
    assert run["tags"]["principal"] == "local-agent"
    assert run["tags"]["mlgate.server.pid"] == str(os.getpid())


def test_step_metrics_keep_their_history(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {})
    for epoch, loss in enumerate([0.7, 0.5, 0.4]):
        tracking.log_metrics(run_id, {"train_loss": loss}, step=epoch)
    history = tracking.client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.7), (1, 0.5), (2, 0.4)]


def test_many_steps_are_logged_in_one_write_with_their_steps(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {})
    tracking.log_step_metrics(run_id, [({"fold-0.train_loss": 0.7}, 1), ({"fold-0.train_loss": 0.5, "fold-0.lr": 0.1}, 2)])
    history = tracking.client.get_metric_history(run_id, "fold-0.train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.7), (2, 0.5)]
    assert tracking.get_run(run_id)["metrics"] == {"fold-0.train_loss": 0.5, "fold-0.lr": 0.1}


def test_a_bad_value_in_any_step_writes_none_of_the_steps(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {})
    with pytest.raises(InvalidInput, match="numbers"):
        tracking.log_step_metrics(run_id, [({"train_loss": 0.7}, 1), ({"train_loss": "low"}, 2)])
    assert tracking.get_run(run_id)["metrics"] == {}


def test_secrets_in_params_and_tags_are_never_logged(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {"auth": {"token": "mlg_abcdef"}, "principal": "agent-1"})
    dropped = tracking.log_params(run_id, {"data": {"password": "hunter2", "url": "postgresql://u:pw@db/x"}, "model.max_depth": 3, "note": "ghp_" + "Ab12" * 9})
    dropped_tags = tracking.set_tags(run_id, {"reasoning.change_description": "deeper trees", "github_token": "ghp_" + "Cd34" * 9})
    run = tracking.get_run(run_id)
    stored = json.dumps(run)
    assert dropped == ["data.password", "data.url", "note"] and dropped_tags == ["github_token"]
    assert "hunter2" not in stored and "ghp_" not in stored and "mlg_abcdef" not in stored and "pw@" not in stored
    assert run["params"] == {"model.max_depth": "3"}
    assert run["tags"]["mlgate.redacted_keys"] == "auth.token,data.password,data.url,github_token,note"
    assert run["tags"]["reasoning.change_description"] == "deeper trees"


def test_bad_keys_values_and_statuses_are_refused(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {})
    with pytest.raises(InvalidInput, match="names MLflow cannot store"):
        tracking.log_params(run_id, {"bad$key": 1})
    with pytest.raises(InvalidInput, match="6000"):
        tracking.log_params(run_id, {"blob": "x" * 6001})
    with pytest.raises(InvalidInput, match="numbers"):
        tracking.log_metrics(run_id, {"roc_auc": "high"})
    with pytest.raises(InvalidInput, match="FINISHED"):
        tracking.end_run(run_id, "DONE")
    assert tracking.get_run(run_id)["params"] == {}


def test_json_artifacts_are_deterministic_and_refuse_secrets(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {})
    path = tracking.log_json_artifact(run_id, "evaluation_report.json", {"b": [1, 2], "a": {"d": 0.5, "c": None}})
    assert path == "evaluation_report.json"
    local = Path(tracking.client.download_artifacts(run_id, path, dst_path=str(Path(tracking.artifact_root) / "dl")))
    assert local.read_text() == '{\n  "a": {\n    "c": null,\n    "d": 0.5\n  },\n  "b": [\n    1,\n    2\n  ]\n}\n'
    with pytest.raises(GovernanceError, match="credentials") as refused:
        tracking.log_json_artifact(run_id, "manifest.json", {"source": {"api_key": "abc123"}})
    assert refused.value.rule_id == "secrets.never_leave"
    with pytest.raises(InvalidInput, match="file name"):
        tracking.log_json_artifact(run_id, "../escape.json", {})


def test_end_run_records_the_reason_and_scrubs_credentials(tracking: MlflowTracking, experiment: str) -> None:
    killed, failed = tracking.start_run(experiment, {}), tracking.start_run(experiment, {})
    tracking.end_run(killed, "KILLED", "cancelled by the client")
    tracking.end_run(failed, "FAILED", "child printed Bearer abcdefghijklmnopqrstu")
    assert tracking.get_run(killed)["tags"]["mlgate.end_reason"] == "cancelled by the client"
    assert tracking.get_run(failed)["status"] == "FAILED"
    assert "abcdefghijklmnop" not in tracking.get_run(failed)["tags"]["mlgate.end_reason"]


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "0" * 31, "ABCDEF" * 6, "f" * 32])
def test_unknown_or_malformed_run_ids_are_not_found(tracking: MlflowTracking, run_id: str) -> None:
    with pytest.raises(NotFound):
        tracking.get_run(run_id)


def test_best_prior_run_is_the_best_finished_run_with_the_metric(tracking: MlflowTracking, experiment: str) -> None:
    runs = {}
    for name, value, status in [("low", 0.70, "FINISHED"), ("high", 0.80, "FINISHED"), ("failed", 0.95, "FAILED"), ("nan", float("nan"), "FINISHED"), ("none", None, "FINISHED")]:
        runs[name] = tracking.start_run(experiment, {})
        tracking.log_metrics(runs[name], {"roc_auc": value, "log_loss": None if value is None else 1 - value})
        tracking.end_run(runs[name], status)
    assert tracking.best_prior_run(experiment, "roc_auc") == {"run_id": runs["high"], "value": 0.80}
    assert tracking.best_prior_run(experiment, "roc_auc", exclude_run_id=runs["high"]) == {"run_id": runs["low"], "value": 0.70}
    assert tracking.best_prior_run(experiment, "log_loss", lower_is_better=True)["run_id"] == runs["high"]
    assert tracking.best_prior_run(experiment, "pr_auc") is None


def test_orphaned_runs_of_a_dead_server_are_reconciled_to_failed(tracking: MlflowTracking, store: Path, experiment: str) -> None:
    dead = MlflowTracking(tracking.tracking_uri, store / "artifacts", owner=dead_process_identity())
    orphan = dead.start_run(experiment, {})
    live = tracking.start_run(experiment, {})
    foreign = tracking.start_run(experiment, {})
    tracking.set_tags(foreign, {"mlgate.server.host": "another-host"})
    reconciled = tracking.reconcile_orphans()
    assert orphan in reconciled and live not in reconciled and foreign not in reconciled
    run = tracking.get_run(orphan)
    assert run["status"] == "FAILED"
    assert "orphaned" in run["tags"]["mlgate.end_reason"] and str(dead.owner.pid) in run["tags"]["mlgate.end_reason"]
    assert tracking.get_run(live)["status"] == "RUNNING"
    assert tracking.reconcile_orphans() == []


def test_owner_liveness_tells_reboots_and_reused_pids_apart() -> None:
    here = ProcessIdentity.of(os.getpid())
    assert owner_is_alive(here.tags(), here) is True
    assert owner_is_alive({**here.tags(), "mlgate.server.boot_id": "another-boot"}, here) is False
    assert owner_is_alive({**here.tags(), "mlgate.server.started": "1"}, here) is False
    assert owner_is_alive(dead_process_identity().tags(), here) is False
    assert owner_is_alive({**here.tags(), "mlgate.server.pid": "0"}, here) is None
    assert owner_is_alive({}, here) is None


def test_model_versions_register_and_aliases_point_at_them(tracking: MlflowTracking, experiment: str) -> None:
    run_id = tracking.start_run(experiment, {})
    artifact_uri = tracking.get_run(run_id)["artifact_uri"]
    first = tracking.register_model_version("acme-credit-default", f"{artifact_uri}/model", run_id, {"dataset_hash": "ab" * 32})
    second = tracking.register_model_version("acme-credit-default", f"{artifact_uri}/model", run_id)
    assert (first, second) == ("1", "2")
    assert tracking.alias_version("acme-credit-default", "candidate") is None
    tracking.set_alias("acme-credit-default", "candidate", second)
    assert tracking.alias_version("acme-credit-default", "candidate") == "2"
    assert tracking.set_model_version_tags("acme-credit-default", second, {"promoted": True, "password": "x"}) == ["password"]
    assert tracking.client.get_model_version("acme-credit-default", "2").tags == {"promoted": "true"}


def test_flatten_uses_dotted_keys_and_keeps_empty_mappings_as_values() -> None:
    assert flatten({"a": {"b": {"c": 1}, "e": {}}, "d": [1]}) == {"a.b.c": 1, "a.e": {}, "d": [1]}


def test_server_ports_track_into_sqlite_and_artifacts_under_the_state_dir(settings: Settings) -> None:
    tracking = build_ports(settings).tracking
    assert tracking.tracking_uri == f"sqlite:///{settings.state_dir / 'mlflow.db'}"
    run_id = tracking.start_run(tracking.get_or_create_experiment("acme/demo"), {})
    tracking.log_json_artifact(run_id, "drift_baseline.json", {"features": {}})
    assert (settings.state_dir / "mlflow.db").is_file()
    assert list((settings.state_dir / "mlartifacts").rglob("drift_baseline.json"))


def _dead_run(tracking: MlflowTracking, store: Path, experiment_name_: str) -> str:
    """A RUNNING run of `experiment_name_` whose server process is gone."""
    dead = MlflowTracking(tracking.tracking_uri, store / "artifacts", owner=dead_process_identity())
    run_id = dead.start_run(dead.get_or_create_experiment(experiment_name_), {})
    dead.heartbeat.discard(run_id)
    return run_id


def test_reconciling_a_projects_experiments_leaves_another_projects_orphans_running(tracking: MlflowTracking, store: Path, request: pytest.FixtureRequest) -> None:
    own, other = experiment_name("acme-bank", request.node.name), experiment_name("other-bank", request.node.name)
    mine, theirs = _dead_run(tracking, store, own), _dead_run(tracking, store, other)
    assert tracking.reconcile_orphans(experiments=[own, experiment_name("acme-bank", "never-created")]) == [mine]
    assert tracking.get_run(theirs)["status"] == "RUNNING"
    # a server's adapter knows its project: a call without experiments (run_experiment's) is scoped too
    scoped = MlflowTracking(tracking.tracking_uri, store / "artifacts", project=lambda: other)
    assert scoped.reconcile_orphans() == [theirs]


def test_a_server_built_on_a_workspace_reconciles_only_its_projects_experiment(settings: Settings, request: pytest.FixtureRequest) -> None:
    ports = build_ports(settings)
    try:
        own = experiment_name("demo-bank", "credit-default")
        other = experiment_name("other-bank", "other-project")
        mine, theirs = (_dead_run(ports.tracking, settings.state_dir, name) for name in (own, other))
        assert ports.tracking.reconcile_orphans() == [mine]
        assert ports.tracking.get_run(theirs)["status"] == "RUNNING"
    finally:
        ports.audit.close()


def test_concurrent_first_uses_of_mlflow_in_a_fresh_process_all_succeed(settings: Settings) -> None:
    """The start-up race: the recovery thread and request threads each import a different part of
    MLflow first (server/mlflow_import.py). Without one lock, Python's import locks deadlock."""
    MlflowTracking.for_settings(settings).get_or_create_experiment("demo-bank/credit-default")  # a store to read
    code = """
import sys, threading
from pathlib import Path
from server.ports import build_ports
from server.read_ports import read_ports
from server.recovery import recover
from server.settings import load_settings
ports = build_ports(load_settings(Path(sys.argv[1]), transport="memory"))
readable = read_ports(ports)
uses = [lambda: recover(ports), readable.registry.list_models, lambda: readable.tracking.find_experiment("x"),
        lambda: ports.registry.version("demo-bank-credit-default", "1")]
start, failed = threading.Barrier(len(uses)), []
def run(use):
    start.wait()
    try:
        use()
    except Exception as error:
        if type(error).__name__ != "NotFound":
            failed.append(repr(error))
threads = [threading.Thread(target=run, args=(use,), daemon=True) for use in uses]
[t.start() for t in threads]
[t.join(120) for t in threads]
print(failed if failed or any(t.is_alive() for t in threads) else "ok")
"""
    done = subprocess.run([sys.executable, "-c", code, str(settings.workspace)], capture_output=True, text=True, timeout=180, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip().splitlines()[-1:] == ["ok"], done.stdout + done.stderr[-3000:]


def test_the_server_imports_mlflow_only_through_the_import_lock() -> None:
    """A `from mlflow... import` in a request path would race the recovery thread's first import
    again; `mlgate tracking migrate` is a one-shot command that takes the lock first."""
    import re  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2] / "server"
    allowed = {"mlflow_import.py", "tracking_migrate.py"}
    direct = [str(p.relative_to(root)) for p in root.rglob("*.py") if p.name not in allowed and re.search(r"^\s*(import|from) mlflow\b", p.read_text(), re.M)]
    assert direct == []
