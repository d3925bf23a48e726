"""A finished run's metrics as the audit chain recorded them, and the check promote makes.

The tracking store (MLflow's sqlite database in the state directory) is a plain file an agent with
its own shell can edit: raising a run's `test_roc_auc` there, lowering the champion's, or copying a
run with better figures into the store would pass promotion gates the run failed. So when
run_experiment (or a reproduction) finishes a run, the server chains

    run_metrics   run_id, names (sorted metric names), metrics_sha256, params (sorted param names),
                  params_sha256, artifacts (sorted artifact paths), artifacts_sha256

where metrics_sha256 is the SHA-256 of the canonical JSON of {name: float.hex(value)} of every
metric the run holds then, params_sha256 that of {name: value} of its params (the dataset, commit,
config and feature hashes promote's gates and the champion's scoring read), and artifacts_sha256
that of {artifact path: SHA-256 of its bytes}: the artifacts (the model files promote registers,
the test predictions the champion comparison reads) are files in the state directory too. Records
chained before params were (no params_sha256) vouch for metrics and artifacts only. The values
themselves are not chained: the test figures are sealed and `mlgate://audit/mine` shows agents
their own records. A run counts for promotion only when the chain holds its record (the first one
for the run id), every recorded metric, param and artifact is still as recorded, and the only ones
added since are those mlgate itself logs later (LATER_PREFIXES: reproduce's seed variance;
LATER_ARTIFACTS: promote's model card).

Runs finished before runs were chained have no record. Some tools still take one (open_pr, a
champion promoted then, reproduce), but only a run the chain shows mlgate evaluated before its
first run_metrics record: the test-set query its evaluation counted (server/test_queries.py,
purpose COMPUTED_BY_RUN). A run copied into the store by hand has no such record, and once the
chain holds a run_metrics record every run mlgate finishes gets its own.
`mlgate audit verify` checks the metrics of every run (the artifacts only at promotion: reading
every run's model files would make verify as slow as copying the store).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from server.audit.records import canonical, parse_line
from server.audit.tail import ChainTail
from server.ledger import ChainWriter
from server.mlflow_import import mlflow_module
from server.test_queries import RECORD_KIND as TEST_QUERY
from tools.sealed import COMPUTED_BY_RUN

KIND = "run_metrics"
LATER_PREFIXES = ("seed_variance_",)  # tools/reproduce.py logs these on the original run
LATER_ARTIFACTS = ("model_card.json",)  # tools/promote.py logs it on the promoted run
RUN_ID = re.compile(r"^[0-9a-f]{32}\Z")
_MARKER = f'"kind":"{KIND}"'.encode()
_EVALUATED = f'"kind":"{TEST_QUERY}"'.encode()


def metrics_sha256(metrics: Mapping[str, Any], names: list[str]) -> str | None:
    """SHA-256 of the named metrics' exact values; None when one is missing or not a number."""
    try:
        values = {name: float(metrics[name]).hex() for name in names}
    except (KeyError, TypeError, ValueError):
        return None
    return hashlib.sha256(canonical(values)).hexdigest()


def params_sha256(params: Mapping[str, Any], names: list[str]) -> str | None:
    """SHA-256 of the named params' values (MLflow keeps them as text); None when one is missing."""
    try:
        values = {name: str(params[name]) for name in names}
    except KeyError:
        return None
    return hashlib.sha256(canonical(values)).hexdigest()


def artifact_digests(tracking: Any, run_id: str) -> dict[str, str] | None:
    """{artifact path: SHA-256} of every artifact file of the run; None when they cannot be read."""
    MlflowException = mlflow_module("mlflow.exceptions").MlflowException  # first use under the import lock (server/mlflow_import.py)

    with tempfile.TemporaryDirectory(prefix="mlgate-artifacts-") as scratch:
        try:
            root = Path(tracking.client.download_artifacts(run_id, "", scratch))
            return {p.relative_to(root).as_posix(): _file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
        except (MlflowException, OSError):
            return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _artifacts_sha256(digests: Mapping[str, str] | None, names: list[str]) -> str | None:
    if digests is None or any(name not in digests for name in names):
        return None
    return hashlib.sha256(canonical({name: digests[name] for name in names})).hexdigest()


class RunMetricsLedger:
    """Chains a finished run's metrics and checks a run's metrics against the chain. Reads the chain
    incrementally (it only grows), as server/ledger.py does. Thread-safe."""

    def __init__(self, audit_path: Path | str, sink: Any = None, tracking: Any = None) -> None:
        self.path = Path(audit_path)
        self._writer = ChainWriter(self.path, sink)
        self._tracking = tracking  # the run's artifacts are read through it (None: metrics only)
        self._mutex = threading.Lock()
        self._tail = ChainTail(self.path)
        self._records: dict[str, dict[str, Any]] = {}
        self._legacy: set[str] = set()  # runs mlgate evaluated before the chain's first run_metrics record

    def record(self, run_id: str, metrics: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        """Chain the metrics, params and artifacts `run_id` holds now. Raises IntegrityError when
        the chain cannot record."""
        names, param_names = sorted(str(name) for name in metrics), sorted(str(name) for name in params)
        digests = artifact_digests(self._tracking, run_id) if self._tracking is not None else {}
        artifacts = sorted(digests or {})
        self._writer.append({"kind": KIND, "run_id": run_id, "names": names, "metrics_sha256": metrics_sha256(metrics, names),
                             "params": param_names, "params_sha256": params_sha256(params, param_names),
                             "artifacts": artifacts, "artifacts_sha256": _artifacts_sha256(digests, artifacts)})  # fmt: skip

    def recorded(self, run_id: str) -> dict[str, Any] | None:
        """The first well-formed run_metrics record of `run_id` in the chain, or None."""
        return self.all().get(str(run_id))

    def all(self) -> dict[str, dict[str, Any]]:
        """{run id: its first well-formed run_metrics record}."""
        with self._mutex:
            self._catch_up()
            return dict(self._records)

    def legacy(self) -> frozenset[str]:
        """The runs mlgate evaluated before the chain's first run_metrics record (finished unrecorded)."""
        with self._mutex:
            self._catch_up()
            return frozenset(self._legacy)

    def _catch_up(self) -> None:
        for restarted, data in self._tail.pieces():
            if restarted:
                self._records, self._legacy = {}, set()
            for line in data.splitlines(keepends=True):
                if _MARKER in line:
                    self._consider(line)
                elif not self._records and _EVALUATED in line:
                    self._consider_evaluated(line)

    def _consider(self, line: bytes) -> None:
        record, problem = parse_line(line)
        if problem is None and record is not None and record.get("kind") == KIND and RUN_ID.match(str(record.get("run_id"))):
            self._records.setdefault(record["run_id"], record)

    def _consider_evaluated(self, line: bytes) -> None:
        record, problem = parse_line(line)
        evaluated = problem is None and record is not None and record.get("kind") == TEST_QUERY and record.get("purpose") == COMPUTED_BY_RUN
        if evaluated and RUN_ID.match(str(record.get("run_id"))):
            self._legacy.add(record["run_id"])

    def problem(self, run: Mapping[str, Any], *, unrecorded_ok: bool = False) -> str | None:
        """None when the run's metrics are the ones the chain recorded when it finished; else why not.
        `unrecorded_ok`: a run without a record passes when mlgate evaluated it before runs' metrics
        were chained (a champion promoted then: promote registers no run without one now)."""
        run_id = str(run.get("run_id"))
        record = self.recorded(run_id)
        if record is None:
            legacy = unrecorded_ok and run_id in self.legacy()
            return None if legacy else "the audit chain holds no record of its metrics (it was not finished by run_experiment or reproduce)"
        return _problem(record, run) or self._artifacts_problem(record)

    def _artifacts_problem(self, record: Mapping[str, Any]) -> str | None:
        if self._tracking is None:
            return None
        names, digests = record.get("artifacts"), artifact_digests(self._tracking, str(record["run_id"]))
        if not isinstance(names, list) or _artifacts_sha256(digests, names) != record.get("artifacts_sha256"):
            return "its artifacts (model files, test predictions, reports) are not the ones the audit chain recorded when it finished (edited)"
        added = sorted(name for name in digests or {} if name not in names and name not in LATER_ARTIFACTS)
        return f"artifacts were added to it after it finished: {', '.join(added[:5])}" if added else None


def _problem(record: Mapping[str, Any], run: Mapping[str, Any]) -> str | None:
    """Why the run's metrics or params are not the ones the chain recorded; None when they are."""
    return _metrics_problem(record, run.get("metrics") or {}) or _params_problem(record, run.get("params") or {})


def _params_problem(record: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    if "params_sha256" not in record:
        return None  # chained before params were: its metrics and artifacts are still checked
    names = record.get("params")
    if not isinstance(names, list) or params_sha256(params, names) != record["params_sha256"]:
        return "its params (dataset, commit, config and feature hashes) in the tracking store are not the ones the audit chain recorded when it finished (edited)"
    added = sorted(name for name in params if name not in names)
    return f"params were added to it after it finished: {', '.join(added[:5])}" if added else None


def _metrics_problem(record: Mapping[str, Any], metrics: Mapping[str, Any]) -> str | None:
    names = record.get("names")
    if not isinstance(names, list) or metrics_sha256(metrics, names) != record.get("metrics_sha256"):
        return "its metrics in the tracking store are not the ones the audit chain recorded when it finished (edited)"
    added = sorted(name for name in metrics if name not in names and not str(name).startswith(LATER_PREFIXES))
    if added:
        return f"metrics were added to it after it finished: {', '.join(added[:5])}"
    return None


# --- the report of `mlgate audit verify` -----------------------------------------------------


def run_findings(runs: Iterable[Mapping[str, Any]], records: Mapping[str, Mapping[str, Any]], legacy: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """[(kind, detail)] for the runs (this chain's: {run_id, tags, status, metrics, params}) whose metrics
    the chain does not vouch for: `run_metrics_edited` when a recorded run's metrics or params changed;
    `run_metrics_unrecorded` for a FINISHED run without a record, once the chain holds any, that is
    not `legacy` (RunMetricsLedger.legacy): mlgate records every run it finishes since, so it was
    copied in by hand (whatever witness tags the copy carries)."""
    found = []
    for run in runs:
        run_id = str(run["run_id"])
        if run_id in records:
            problem = _problem(records[run_id], run)
            found += [("run_metrics_edited", f"run {run_id}: {problem}")] if problem else []
        elif records and run.get("status") == "FINISHED" and run_id not in legacy:
            found.append(("run_metrics_unrecorded", f"run {run_id} is FINISHED but the audit chain holds no record of its metrics (copied into the tracking store by hand)"))
    return found
