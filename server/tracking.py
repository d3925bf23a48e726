"""The MLflow adapter (DESIGN §6): the server owns every run; tools only see plain dicts.

sqlite under the state directory with a local artifact root by default, any tracking URI by
config. MLflow is imported on first use (seconds), so a server that never trains does not pay for
it at startup, once per process under a lock (server/mlflow_import.py: concurrent first imports
deadlock), and its usage telemetry is switched off before import: a governed project does not phone
home. Calls block; async callers run them in a worker thread.

Every run records which server process owns it (host, boot id, pid, process start time), so a later
server can tell a run that is still training from one whose server died (`reconcile_orphans`).
Params and tags pass the secret scanner first; JSON artifacts holding a secret are refused.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from server.clock import SystemClock
from server.audit.witness import CHAIN_TAG
from server.liveness import OWNER_TAG_PREFIX, ProcessIdentity
from server.mlflow_import import mlflow_client, mlflow_module
from server.sandbox_leftovers import leftover_note
from server.tracking_owners import HEARTBEAT_TAG, PID_NS_TAG, Heartbeat, pid_namespace, run_owner_alive
from server.tracking_store import artifact_root as configured_artifact_root
from server.tracking_store import is_remote
from server.tracking_stats import refresh as refresh_planner_statistics
from server.tracking_values import as_text, check_keys, chunks, flatten, numeric_metrics, run_record, scrub_credential, truncate
from tools.errors import GovernanceError, InvalidInput, NotFound
from tools.provenance import MAX_PARAM_CHARS, stable_json
from tools.redact import redact_text
from tools.secrets_scan import find_secrets, strip_secrets

RUN_ID = re.compile(r"^[0-9a-f]{32}\Z")
ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,120}\.json\Z")
END_STATUSES = ("FINISHED", "FAILED", "KILLED")
MAX_TAG_CHARS, BATCH = 8000, 100
END_REASON_TAG = "mlgate.end_reason"
REDACTED_TAG = "mlgate.redacted_keys"
# The audit chain head ("seq:hash") when the run was created and when it ended (server/audit/witness.py).
WITNESS_TAG, WITNESS_END_TAG = "mlgate.audit_witness", "mlgate.audit_witness_end"


def _import_mlflow() -> Any:
    """MLflow, imported once under the process-wide lock (server/mlflow_import.py)."""
    return mlflow_module()


def experiment_name(client_name: str, project_name: str) -> str:
    """The MLflow experiment of a workspace: `<client_name>/<project_name>` from the standards."""
    return f"{client_name}/{project_name}"


def project_experiment(standards: Mapping[str, Any]) -> str:
    """The experiment of the project the standards describe. Raises KeyError without its names."""
    return experiment_name(standards["client_name"], standards["project_name"])


class MlflowTracking:
    """Tracking adapter over MlflowClient. `artifact_root` (a directory or a URI) is used for stores
    the client writes directly (sqlite, file, a database); a tracking server decides its own.
    While a run it started is RUNNING, a heartbeat thread refreshes its heartbeat tag every
    `heartbeat_s` (server/tracking_owners.py); other hosts' runs count as orphans `stale_after_s`
    after their last heartbeat. `project` names the server's experiment: orphans are looked for
    there only."""

    def __init__(
        self, tracking_uri: str, artifact_root: Path | str, *, clock: Any = None, owner: ProcessIdentity | None = None, witness: Callable[[], str] | None = None,
        heartbeat_s: float = 30.0, stale_after_s: float = 600.0, chain: Callable[[], str | None] | None = None,
        project: Callable[[], str] | None = None,
    ) -> None:  # fmt: skip
        self.tracking_uri = tracking_uri
        self._witness = witness
        self._chain = chain  # the id of the audit chain the witnesses belong to (server/audit/witness.py)
        self._project = project  # the name of this server's project's experiment (reconcile_orphans)
        self.artifact_root = artifact_root
        self._clock = clock or SystemClock()
        self._owner = owner
        self._client_instance: Any = None
        self._client_lock = threading.Lock()
        self._stale_after_ms = int(stale_after_s * 1000)
        self.heartbeat = Heartbeat(lambda run_id: self.client.set_tag(run_id, HEARTBEAT_TAG, str(self._now_ms())), heartbeat_s)

    @classmethod
    def for_settings(cls, settings: Any, **kwargs: Any) -> MlflowTracking:
        """The adapter for the settings' tracking store. Raises InvalidInput for a database URI
        without an artifact root outside the state dir (server/tracking_store.py)."""
        tracking = settings.tracking
        root = configured_artifact_root(settings.mlflow_uri, tracking.artifact_root, settings.state_dir)
        return cls(settings.mlflow_uri, root, heartbeat_s=tracking.heartbeat_seconds, stale_after_s=tracking.stale_after_seconds, **kwargs)

    @property
    def owner(self) -> ProcessIdentity:
        if self._owner is None:
            self._owner = ProcessIdentity.of(os.getpid())
        return self._owner

    @property
    def client(self) -> Any:
        if self._client_instance is None:
            with self._client_lock:  # one client (one opening of the store) per adapter, whichever thread is first
                if self._client_instance is None:
                    self._client_instance = mlflow_client(self.tracking_uri, sql_registry=not is_remote(self.tracking_uri))
        return self._client_instance

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    def _artifact_location(self, name: str) -> str | None:
        if is_remote(self.tracking_uri):
            return None
        slug = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("._") or "experiment"
        if isinstance(self.artifact_root, str):  # an object-store URI (s3://...): the store makes its "directories"
            return f"{self.artifact_root.rstrip('/')}/{slug}"
        location = Path(self.artifact_root) / slug
        location.mkdir(parents=True, exist_ok=True)
        return location.resolve().as_uri()

    # --- experiments and runs -------------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> str:
        """The experiment id of `name`, created on first use (safe against a concurrent creator)."""
        errors = mlflow_module("mlflow.exceptions")
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self._artifact_location(name))
        except errors.MlflowException:
            existing = self.client.get_experiment_by_name(name)
            if existing is None:
                raise
            return existing.experiment_id

    def find_experiment(self, name: str) -> str | None:
        """The experiment id of `name`, or None: a lookup that never creates (read-only tools)."""
        existing = self.client.get_experiment_by_name(name)
        return None if existing is None else existing.experiment_id

    def start_run(self, experiment_id: str, tags: Mapping[str, Any], *, run_name: str | None = None) -> str:
        """Create a RUNNING run tagged with `tags` and the owning server process. Returns its id."""
        clean, dropped = self._clean_tags(tags)
        clean.update({**self.owner.tags(), PID_NS_TAG: pid_namespace(), HEARTBEAT_TAG: str(self._now_ms())})
        if self._witness is not None:
            clean[WITNESS_TAG] = self._witness()
        chain = self._chain() if self._chain is not None else None
        if chain:
            clean[CHAIN_TAG] = chain
        if dropped:
            clean[REDACTED_TAG] = ",".join(dropped)
        run = self.client.create_run(experiment_id, start_time=self._now_ms(), tags=clean, run_name=run_name)
        self.heartbeat.add(run.info.run_id)
        return run.info.run_id

    def end_run(self, run_id: str, status: str, reason: str | None = None) -> None:
        """Terminate a run as FINISHED, FAILED or KILLED; `reason` is kept as a tag (credentials scrubbed)."""
        if status not in END_STATUSES:
            raise InvalidInput(f"run status must be one of {END_STATUSES}, got {status!r}", "pass FINISHED, FAILED or KILLED", rule_id="tracking.status")
        if reason:
            self.client.set_tag(run_id, END_REASON_TAG, truncate(scrub_credential(redact_text(reason)), MAX_TAG_CHARS))
        if self._witness is not None:
            self.client.set_tag(run_id, WITNESS_END_TAG, self._witness())
        self.client.set_terminated(run_id, status=status, end_time=self._now_ms())
        self.heartbeat.discard(run_id)
        self.refresh_statistics()

    def refresh_statistics(self) -> bool:
        """Keep the sqlite store's planner statistics in step with its size (server/tracking_stats.py:
        without them the metric-sorted searches grow with the square of the number of runs)."""
        return refresh_planner_statistics(self.tracking_uri)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run as a plain dict. Raises NotFound for a malformed or unknown run id."""
        errors = mlflow_module("mlflow.exceptions")
        if not isinstance(run_id, str) or not RUN_ID.match(run_id):
            raise NotFound(f"no run {str(run_id)[:40]!r}: run ids are 32 lowercase hex characters", "list runs to find the id", rule_id="tracking.run_not_found")
        try:
            return run_record(self.client.get_run(run_id))
        except errors.MlflowException as error:
            raise NotFound(f"no run {run_id}", "list runs to find the id", rule_id="tracking.run_not_found") from error

    def experiments(self) -> list[dict[str, str]]:
        """Every active experiment of the store as `{id, name}`, oldest first (never creates one)."""
        found = self.client.search_experiments(order_by=["creation_time ASC"])
        return [{"id": e.experiment_id, "name": e.name} for e in found]

    def search_runs(self, experiment_ids: list[str], filter_string: str = "", order_by: list[str] | None = None, max_results: int = 100) -> list[dict[str, Any]]:
        """Runs of the experiments matching an MLflow filter, as plain dicts (at most `max_results`)."""
        runs = self.client.search_runs(experiment_ids, filter_string=filter_string, order_by=order_by or [], max_results=max_results)
        return [run_record(run) for run in runs]

    def best_prior_run(
        self, experiment_id: str, metric: str, *, exclude_run_id: str | None = None, lower_is_better: bool = False, extra_filter: str = ""
    ) -> dict[str, Any] | None:
        """`{run_id, value}` of the FINISHED run with the best `metric` (NaN ignored), or None."""
        check_keys([metric])
        conditions = ["attributes.status = 'FINISHED'", f"metrics.`{metric}` > -1e300", *([extra_filter] if extra_filter else [])]
        order = f"metrics.`{metric}` {'ASC' if lower_is_better else 'DESC'}"
        for run in self.search_runs([experiment_id], " and ".join(conditions), [order, "attributes.start_time ASC"], max_results=50):
            value = run["metrics"].get(metric)
            if run["run_id"] != exclude_run_id and value is not None and value == value:
                return {"run_id": run["run_id"], "value": value}
        return None

    # --- params, metrics, tags ------------------------------------------------------------------

    def _clean_tags(self, tags: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
        flat = {k: as_text(v) for k, v in flatten(tags).items()}
        check_keys(list(flat))
        clean, dropped = strip_secrets(flat)
        return {k: truncate(v, MAX_TAG_CHARS) for k, v in clean.items()}, dropped

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> list[str]:
        """Log nested params under dotted keys, values as text. Entries that look like secrets (by
        name or by value) are not logged: their keys are returned and tagged mlgate.redacted_keys.
        Raises InvalidInput for a key MLflow cannot store or a value over 6000 characters."""
        Param = mlflow_module("mlflow.entities").Param
        flat = {k: as_text(v) for k, v in flatten(params).items()}
        check_keys(list(flat))
        too_long = sorted(k for k, v in flat.items() if len(v) > MAX_PARAM_CHARS)
        if too_long:
            raise InvalidInput(
                f"param values over {MAX_PARAM_CHARS} characters: {too_long[:5]}",
                "MLflow keeps each param up to that many characters: shorten these values (to leave many columns out, "
                "drop them in src/features.py rather than listing them in features.exclude)",
                rule_id="tracking.param_size",
            )
        clean, dropped = strip_secrets(flat)
        for chunk in chunks(sorted(clean.items()), BATCH):
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in chunk])
        self._note_redacted(run_id, dropped)
        return dropped

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics (nested -> dotted keys); None values (undefined metrics) are skipped.
        `step` makes them step metrics (epochs, folds). Raises InvalidInput for non-numbers."""
        self.log_step_metrics(run_id, [(metrics, step or 0)])

    def log_step_metrics(self, run_id: str, steps: Sequence[tuple[Mapping[str, Any], int]]) -> None:
        """log_metrics of several (metrics, step) pairs in one write: one commit, not one per step.
        Raises InvalidInput, writing nothing, when any value is not a number."""
        Metric = mlflow_module("mlflow.entities").Metric
        stamp = self._now_ms()
        entries = [Metric(k, float(v), stamp, step) for metrics, step in steps for k, v in sorted(numeric_metrics(metrics).items())]
        for chunk in chunks(entries, 10 * BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> list[str]:
        """Set tags (nested -> dotted keys, long values truncated). Secret-looking entries are
        dropped and their keys returned."""
        RunTag = mlflow_module("mlflow.entities").RunTag
        clean, dropped = self._clean_tags(tags)
        for chunk in chunks(sorted(clean.items()), BATCH):
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in chunk])
        self._note_redacted(run_id, dropped)
        return dropped

    def _note_redacted(self, run_id: str, dropped: list[str]) -> None:
        """Keep the union of every key redacted on the run in one tag (names only, never values)."""
        if dropped:
            earlier = self.client.get_run(run_id).data.tags.get(REDACTED_TAG, "")
            keys = sorted({*filter(None, earlier.split(",")), *dropped})
            self.client.set_tag(run_id, REDACTED_TAG, truncate(",".join(keys), MAX_TAG_CHARS))

    # --- artifacts ------------------------------------------------------------------------------

    def log_artifact_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> str:
        """Copy a local file into the run's artifacts; returns its artifact-relative path."""
        self.client.log_artifact(run_id, str(path), artifact_path)
        return f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name

    def list_artifacts(self, run_id: str, limit: int = 500) -> list[str]:
        """Paths of the run's artifact files (directories walked), sorted, at most `limit`."""
        found: list[str] = []
        pending: list[str | None] = [None]
        while pending and len(found) < limit:
            for entry in self.client.list_artifacts(run_id, pending.pop()):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    found.append(entry.path)
        return sorted(found)[:limit]

    def log_json_artifact(self, run_id: str, name: str, payload: Any, artifact_path: str | None = None) -> str:
        """Write `payload` as stable JSON (sorted keys, same bytes for the same payload) to artifact
        `name`. Raises InvalidInput for a bad name, GovernanceError when the payload holds a secret."""
        if not ARTIFACT_NAME.match(name):
            raise InvalidInput(f"artifact name {name[:60]!r} is not a plain *.json file name", "use letters, digits, '_', '-', '.'", rule_id="tracking.artifact_name")
        findings = find_secrets(payload)
        if findings:
            raise GovernanceError(
                f"{name} would carry credentials at {[f.path for f in findings][:5]}",
                "remove credentials from what is logged",
                rule_id="secrets.never_leave",
            )
        with tempfile.TemporaryDirectory(prefix="mlgate-artifact-") as scratch:
            target = Path(scratch) / name
            target.write_text(stable_json(payload), encoding="utf-8")
            return self.log_artifact_file(run_id, target, artifact_path)

    # --- orphans ----------------------------------------------------------------------------------

    def _running_runs(self, experiments: Sequence[str] | None) -> Iterator[Any]:
        """RUNNING runs of the named experiments (of every active one for None)."""
        if experiments is None:
            ViewType = mlflow_module("mlflow.entities").ViewType
            ids = [e.experiment_id for e in self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000)]
        else:
            ids = [found for name in experiments if (found := self.find_experiment(name)) is not None]
        for chunk in chunks(ids, BATCH):
            page = self.client.search_runs(chunk, "attributes.status = 'RUNNING'", max_results=1000)
            yield from page
            while page.token:
                page = self.client.search_runs(chunk, "attributes.status = 'RUNNING'", max_results=1000, page_token=page.token)
                yield from page

    def _orphan_scope(self, experiments: Sequence[str] | None) -> Sequence[str] | None:
        if experiments is None and self._project is not None:
            return [self._project()]
        return experiments

    def reconcile_orphans(self, is_alive: Callable[[Mapping[str, str]], bool | None] | None = None,
                          leftovers: Callable[[str], int] | None = None, *, experiments: Sequence[str] | None = None, into: list | None = None) -> list[str]:
        """Mark FAILED every RUNNING run of `experiments` whose owning server process is gone: on
        this host by pid, elsewhere by a stale heartbeat (server/tracking_owners.py); runs it cannot
        tell about are left alone. `experiments` defaults to the adapter's project (`project`; a
        shared store holds other projects' runs, which their own servers reconcile), to every
        experiment for an adapter without one. `leftovers(run_id)` first kills what the run's
        sandboxes left and says how many (server/sandbox_leftovers.py); the reason names the count.
        Returns the reconciled run ids, appended to `into` one by one when given."""
        alive = is_alive or (lambda tags: run_owner_alive(tags, self.owner, now_ms=self._now_ms(), stale_after_ms=self._stale_after_ms))
        reconciled = [] if into is None else into
        for run in list(self._running_runs(self._orphan_scope(experiments))):
            tags = run.data.tags
            if alive(tags) is False:
                owner = f"pid {tags.get(OWNER_TAG_PREFIX + 'pid')} on {tags.get(OWNER_TAG_PREFIX + 'host')}"
                killed = leftover_note(leftovers(run.info.run_id) if leftovers else 0)
                self.end_run(run.info.run_id, "FAILED", f"orphaned: the server process that owned this run ({owner}) is gone{killed}; reconciled by pid {self.owner.pid}")
                reconciled.append(run.info.run_id)
        return reconciled

    # --- model registry ---------------------------------------------------------------------------

    def register_model_version(self, name: str, source: str, run_id: str, tags: Mapping[str, Any] | None = None) -> str:
        """Register `source` (an artifact URI of the run) as a new version of model `name`; returns the version."""
        errors = mlflow_module("mlflow.exceptions")
        try:
            self.client.create_registered_model(name)
        except errors.MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        clean, _ = strip_secrets({k: as_text(v) for k, v in flatten(tags or {}).items()})
        return str(self.client.create_model_version(name=name, source=source, run_id=run_id, tags=clean).version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points at, or None when the model or alias does not exist."""
        errors = mlflow_module("mlflow.exceptions")
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except errors.MlflowException:
            return None

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, Any]) -> list[str]:
        clean, dropped = strip_secrets({k: as_text(v) for k, v in flatten(tags).items()})
        for key, value in sorted(clean.items()):
            self.client.set_model_version_tag(name, version, key, truncate(value, MAX_TAG_CHARS))
        return dropped
