"""The sealed holdout: test-set figures are computed and stored for humans, never shown to agents.

An agent that sees test metrics after every run selects models on the test set and overfits it
(adaptive overfitting). So everything an agent is told to choose by (run_experiment's metrics,
outcome, metric_delta, the best prior run, list/get/compare views) comes from the validation rows,
and every figure measured on the test rows is sealed: MLflow metrics whose name starts with a
SEALED_PREFIXES entry, the `sealed_test` section of the evaluation report, the promotion gates'
observed values. Humans and operators read them (MLflow, the model card, get_run); each time test
figures are computed or revealed, one test-set query is counted for the dataset (TestQueries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# baseline_<name>_<metric>: the baselines scored on the test rows; seed_variance_<metric>: the
# variance of the test metric across seeds (tools/reproduce.py)
SEALED_PREFIXES = ("test_", "baseline_", "seed_variance_")
SEALED_REPORT_KEYS = ("sealed_test",)
# the purpose of the test-set query a run's own evaluation counts: the chain's record that mlgate made the run
COMPUTED_BY_RUN = "computed by run_experiment"
SEALED_NOTE = (
    "the test set is sealed: test metrics are computed and stored for human reviewers, never shown to agents; "
    "choose models by these validation metrics. promote checks the gates on the sealed test set and says only PASS or FAIL"
)


class TestQueries(Protocol):
    """Counts of test-set queries per dataset (server/test_queries.py)."""

    def record(self, dataset_hash: str, *, purpose: str, run_id: str, principal: str) -> int:
        """Count one query; returns the dataset's new total. Raises on a storage failure."""
        ...

    def count(self, dataset_hash: str) -> int: ...


def is_sealed(metric: str) -> bool:
    return metric.startswith(SEALED_PREFIXES)


def unsealed_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics an agent may see: none measured on the test rows."""
    return {k: v for k, v in metrics.items() if not is_sealed(k)}


def unsealed_report(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if report is None else {k: v for k, v in report.items() if k not in SEALED_REPORT_KEYS}


def count_query(ports: Any, dataset_hash: Any, *, purpose: str, run_id: str, principal: str) -> int | None:
    """Count one test-set query when the server has a ledger (None when it has none)."""
    ledger = getattr(ports, "test_queries", None)
    if ledger is None or not isinstance(dataset_hash, str):
        return None
    return ledger.record(dataset_hash, purpose=purpose, run_id=run_id, principal=principal)


def queries_so_far(ports: Any, dataset_hash: Any) -> int | None:
    ledger = getattr(ports, "test_queries", None)
    return None if ledger is None or not isinstance(dataset_hash, str) else ledger.count(dataset_hash)


# Gates whose observed values are measured on the test rows (tools/gates.GATE_CHECKS).
SEALED_GATES = frozenset({"min_primary_metric", "min_lift_over_baseline", "champion_tolerance", "max_seed_variance", "calibration_vs_prior"})
SEALED_REASON = "sealed: measured on the test set; a human reads the figures (get_run, the model card)"


def sealed_entry(found: Mapping[str, Any]) -> dict[str, Any]:
    """A gate entry as an agent may see it: the status and threshold, not the test-set figures."""
    if found.get("gate") not in SEALED_GATES:
        return dict(found)
    return {**found, "observed": None, "reason": f"{found.get('status')}: {SEALED_REASON}"}


def sealed_receipt(entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [sealed_entry(e) for e in entries]
