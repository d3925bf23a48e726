"""Which unrecorded runs the chain vouches for: those mlgate evaluated before its first run_metrics
record (a real chain in a tmp dir, read by the ledger as the server reads it)."""

from __future__ import annotations

from pathlib import Path

from server.audit.chain import AuditChain
from server.audit.run_metrics import RunMetricsLedger, run_findings
from tools.sealed import COMPUTED_BY_RUN

OLD, NEW, REVEALED = "a" * 32, "b" * 32, "c" * 32


def evaluated(run_id: str, purpose: str = COMPUTED_BY_RUN) -> dict[str, object]:
    return {"kind": "test_query", "dataset_hash": "d" * 64, "purpose": purpose, "run_id": run_id, "principal": "claude", "test_queries": 1}


def chain_of(path: Path, *records: dict[str, object]) -> Path:
    chain = AuditChain(path)
    for record in records:
        chain.append(record)
    chain.close()
    return path


def test_only_runs_evaluated_before_the_first_run_record_are_legacy(tmp_path: Path) -> None:
    ledger = RunMetricsLedger(chain_of(tmp_path / "audit.jsonl", evaluated(OLD), evaluated(REVEALED, "revealed by get_run")))
    assert ledger.legacy() == {OLD}  # a test-set figure revealed is no evaluation by mlgate
    ledger.record("f" * 32, {"val_roc_auc": 0.8}, {"seed": "42"})
    chain_of(tmp_path / "audit.jsonl", evaluated(NEW))
    assert ledger.legacy() == {OLD}
    assert ledger.problem({"run_id": OLD, "metrics": {}, "params": {}}, unrecorded_ok=True) is None
    assert "holds no record" in str(ledger.problem({"run_id": NEW, "metrics": {}, "params": {}}, unrecorded_ok=True))
    assert "holds no record" in str(ledger.problem({"run_id": OLD, "metrics": {}, "params": {}}))


def test_a_fresh_reader_of_the_same_chain_finds_the_same_legacy_runs(tmp_path: Path) -> None:
    path = chain_of(tmp_path / "audit.jsonl", evaluated(OLD))
    RunMetricsLedger(path).record("f" * 32, {}, {})
    chain_of(path, evaluated(NEW))
    assert RunMetricsLedger(path).legacy() == {OLD}


def test_verify_reports_a_finished_unrecorded_run_unless_it_is_legacy() -> None:
    records = {"f" * 32: {"seq": 3, "names": [], "metrics_sha256": None}}
    runs = [{"run_id": run_id, "status": "FINISHED", "tags": {}, "metrics": {}, "params": {}} for run_id in (OLD, NEW)]
    found = run_findings(runs, records, frozenset({OLD}))
    assert [kind for kind, _ in found] == ["run_metrics_unrecorded"] and NEW in found[0][1]
    assert run_findings(runs, {}, frozenset()) == []  # a chain without any run record yet vouches for nothing and reports nothing
