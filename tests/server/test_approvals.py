"""ApprovalStore, OverridesLog and ConfigFiles on real files in tmp dirs."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from policies import Principal
from server.approvals import ApprovalStore, ConfigFiles, OverridesLog
from tests.credentials import approver
from tools.errors import IntegrityError, InvalidInput, NotFound, PolicyDenied

AGENT = Principal("codex", "agent")
HASH, OTHER = "c" * 64, "d" * 64
NOW = "2026-01-01T00:00:00.000000Z"


def request(store: ApprovalStore, change_hash: str = HASH) -> tuple[dict[str, Any], bool]:
    diff = [{"path": "data.target", "op": "replace", "old": "default", "new": "churn"}]
    fields = [{"path": "data.target", "old": "default", "new": "churn", "required": "default"}]
    return store.request(change_hash=change_hash, target="configs/experiment.yaml", diff=diff, fields=fields, requester=AGENT, reasoning=None, now=NOW)


def test_a_request_creates_a_pending_approval_bound_to_the_change_hash(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    record, created = request(store)
    assert created and record["status"] == "pending" and record["change_hash"] == HASH
    assert record["requested_by"] == {"name": "codex", "role": "agent"} and record["created_at"] == NOW
    assert store.get(record["id"]) == record


def test_the_same_change_reuses_its_live_approval_and_another_change_gets_its_own(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    first, _ = request(store)
    again, created = request(store)
    other, other_created = request(store, OTHER)
    assert again["id"] == first["id"] and not created
    assert other_created and other["id"] != first["id"]


def test_concurrent_requests_for_one_change_create_one_approval(tmp_path: Path) -> None:
    store, ids = ApprovalStore(tmp_path), []
    threads = [threading.Thread(target=lambda: ids.append(request(ApprovalStore(tmp_path))[0]["id"])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(set(ids)) == 1 and len(store.list()) == 1


def test_approve_then_consume_once(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    record, _ = request(store)
    approved = store.decide(record["id"], approve=True, approver=approver(tmp_path, "alice"), note="ok", now=NOW)
    assert approved["status"] == "approved" and approved["decided_by"] == "alice" and approved["note"] == "ok"
    assert store.consume(record["id"], HASH, now=NOW)["status"] == "consumed"
    with pytest.raises(PolicyDenied):
        store.consume(record["id"], HASH, now=NOW)
    assert store.live_for(HASH) is None


def test_a_promotion_approval_used_twice_is_refused_in_promotion_words(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    subject = [{"path": "model@champion", "old": "no version", "new": "run " + "a" * 32}]
    record, _ = store.request(change_hash=HASH, target="model@champion", diff=subject, fields=subject, requester=Principal("alice", "human"), reasoning=None, now=NOW, kind="promotion")
    store.decide(record["id"], approve=True, approver=approver(tmp_path, "bob"), note=None, now=NOW)
    store.consume(record["id"], HASH, now=NOW)
    with pytest.raises(PolicyDenied) as refused:
        store.consume(record["id"], HASH, now=NOW)  # the second of two promote calls at once
    assert refused.value.rule_id == "promotion.human_approval" and "another call used it first" in refused.value.reason
    with pytest.raises(PolicyDenied) as config_change:
        store.consume(request(store, OTHER)[0]["id"], OTHER, now=NOW)
    assert config_change.value.rule_id == "config.protected_fields"


def test_an_approval_cannot_be_used_for_another_change(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    record, _ = request(store)
    store.decide(record["id"], approve=True, approver=approver(tmp_path, "alice"), note=None, now=NOW)
    with pytest.raises(PolicyDenied):
        store.consume(record["id"], OTHER, now=NOW)
    assert store.get(record["id"])["status"] == "approved"


def test_decisions_are_final_and_a_pending_approval_cannot_be_consumed(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    record, _ = request(store)
    with pytest.raises(PolicyDenied):
        store.consume(record["id"], HASH, now=NOW)
    store.decide(record["id"], approve=False, approver=approver(tmp_path, "alice"), note=None, now=NOW)
    with pytest.raises(PolicyDenied) as info:
        store.decide(record["id"], approve=True, approver=approver(tmp_path, "alice"), note=None, now=NOW)
    assert info.value.rule_id == "approval.is_pending"
    assert request(store)[0]["status"] == "denied"


def test_an_agent_can_never_decide_even_calling_the_store_directly(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    record, _ = request(store)
    with pytest.raises(PolicyDenied) as info:
        store.decide(record["id"], approve=True, approver=AGENT, note=None, now=NOW)
    assert info.value.rule_id == "role.agents_cannot_approve" and store.get(record["id"])["status"] == "pending"


def test_a_human_without_a_vouched_credential_cannot_decide(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    record, _ = request(store)
    for principal in (Principal("alice", "human"), Principal("alice", "human", "alice:0123456789ab")):
        with pytest.raises(PolicyDenied) as info:
            store.decide(record["id"], approve=True, approver=principal, note=None, now=NOW)
        assert info.value.rule_id == "role.approver_authenticated"
    assert store.get(record["id"])["status"] == "pending"


def test_a_decision_records_the_credential_in_the_audit_chain(tmp_path: Path) -> None:
    store, alice = ApprovalStore(tmp_path), approver(tmp_path, "alice")
    record, _ = request(store)
    decided = store.decide(record["id"], approve=True, approver=alice, note=None, now=NOW)
    chained = store.ledger.approval(record["id"]).decided
    assert chained is not None and chained["credential"] == alice.credential == decided["credential"]
    assert (chained["principal"], chained["role"], chained["decision"], chained["change_hash"]) == ("alice", "human", "approve", HASH)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "apr-XYZ", "apr-0123456789ab/../x", "", "apr-0123456789abc"])
def test_malformed_approval_ids_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidInput):
        ApprovalStore(tmp_path).get(bad)


def test_unknown_approval_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ApprovalStore(tmp_path).get("apr-0123456789ab")
    assert ApprovalStore(tmp_path).find("apr-0123456789ab") is None


def test_in_force_values_round_trip(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path)
    assert store.in_force() == {}
    store.set_in_force({"data.target": '"churn"'})
    assert ApprovalStore(tmp_path).in_force() == {"data.target": '"churn"'}


# --- OverridesLog -----------------------------------------------------------------------------


def entry(**overrides: Any) -> dict[str, Any]:
    base = {"timestamp": NOW, "field": "data.target", "old": '"default"', "new": '"churn"', "approver": "alice", "config_path": "configs/experiment.yaml", "approval_id": "apr-0123456789ab"}
    return {**base, **overrides}


def overrides_log(tmp_path: Path) -> OverridesLog:
    return OverridesLog(tmp_path, tmp_path / "state" / "audit.jsonl")


def test_overrides_log_appends_one_tab_separated_line_per_entry_witnessed_by_its_audit_record(tmp_path: Path) -> None:
    log = overrides_log(tmp_path)
    assert log.append([entry(), entry(field="split.test_size", old="0.2", new="0.3")]) == 2
    lines = log.path.read_text().splitlines()
    assert lines[0].startswith("# timestamp\tfield") and lines[0].endswith("\tapproval_id\taudit_witness")
    (record,) = [json.loads(r) for r in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    witness = f"{record['seq']}:{record['hash']}"
    assert lines[1].split("\t") == [NOW, "data.target", '"default"', '"churn"', "alice", "configs/experiment.yaml", "apr-0123456789ab", witness]
    assert lines[2].split("\t")[1:4] == ["split.test_size", "0.2", "0.3"] and lines[2].endswith("\t" + witness)
    texts = [line.rpartition("\t")[0] for line in lines[1:]]
    assert record["kind"] == "overrides_logged" and record["approval_ids"] == ["apr-0123456789ab"]
    assert record["lines"] == [hashlib.sha256(t.encode()).hexdigest() for t in texts]


def test_overrides_log_keeps_existing_lines_and_control_characters_cannot_forge_lines(tmp_path: Path) -> None:
    log = overrides_log(tmp_path)
    log.path.parent.mkdir(parents=True)
    log.path.write_text("# header written by the template\n")
    log.append([entry(approver="mallory\n2026\tdata.target\tx\ty\tboss")])
    lines = log.path.read_text().splitlines()
    assert lines[0] == "# header written by the template" and len(lines) == 2 and len(lines[1].split("\t")) == 8


def test_overrides_log_refuses_a_symlink_and_chains_nothing(tmp_path: Path) -> None:
    log = overrides_log(tmp_path)
    log.path.parent.mkdir(parents=True)
    (tmp_path / "elsewhere").write_text("")
    log.path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IntegrityError):
        log.append([entry()])
    assert (tmp_path / "elsewhere").read_text() == "" and not (tmp_path / "state" / "audit.jsonl").exists()


# --- ConfigFiles ------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> ConfigFiles:
    (tmp_path / "ws" / "configs").mkdir(parents=True)
    (tmp_path / "ws" / "configs" / "experiment.yaml").write_text("a: 1\n")
    return ConfigFiles(tmp_path / "ws", tmp_path / "state" / "configs.lock")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_config_files_read_and_write_atomically_when_unchanged(files: ConfigFiles) -> None:
    assert files.read("configs/experiment.yaml", 100) == b"a: 1\n"
    files.write({"configs/experiment.yaml": "a: 2\n", "configs/reasoning.yaml": "r: 1\n"}, expected={"configs/experiment.yaml": sha("a: 1\n")})
    assert files.read("configs/experiment.yaml", 100) == b"a: 2\n" and files.read("configs/reasoning.yaml", 100) == b"r: 1\n"
    assert sorted(p.name for p in (files.workspace / "configs").iterdir()) == ["experiment.yaml", "reasoning.yaml"]


def test_config_files_refuse_to_write_over_a_file_changed_since_it_was_read(files: ConfigFiles) -> None:
    with pytest.raises(IntegrityError) as info:
        files.write({"configs/experiment.yaml": "a: 2\n"}, expected={"configs/experiment.yaml": sha("a: 0\n")})
    assert info.value.rule_id == "integrity.config_changed" and files.read("configs/experiment.yaml", 100) == b"a: 1\n"


def test_a_failing_before_commit_step_leaves_files_and_no_temp_files(files: ConfigFiles) -> None:
    def fail() -> None:
        raise PolicyDenied("approval already used", "propose again")

    with pytest.raises(PolicyDenied):
        files.write({"configs/experiment.yaml": "a: 2\n"}, expected={"configs/experiment.yaml": sha("a: 1\n")}, before_commit=fail)
    assert [p.name for p in (files.workspace / "configs").iterdir()] == ["experiment.yaml"]
    assert files.read("configs/experiment.yaml", 100) == b"a: 1\n"


def test_config_files_refuse_symlinks_and_other_paths(files: ConfigFiles, tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("token: x\n")
    path = files.workspace / "configs" / "experiment.yaml"
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(IntegrityError):
        files.read("configs/experiment.yaml", 100)
    with pytest.raises(InvalidInput):
        files.read("configs/project_standards.yaml", 100)
    with pytest.raises(InvalidInput):
        files.read("../secret.yaml", 100)


def test_config_files_refuse_a_symlinked_configs_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "experiment.yaml").write_text("a: 1\n")
    (tmp_path / "ws").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "ws" / "configs")
    with pytest.raises(IntegrityError):
        ConfigFiles(tmp_path / "ws", tmp_path / "lock").read("configs/experiment.yaml", 100)


def test_reading_a_missing_config_is_not_found(files: ConfigFiles) -> None:
    with pytest.raises(NotFound):
        files.read("configs/reasoning.yaml", 100)


def test_read_document_names_the_working_tree_file_and_how_to_restore_it(files: ConfigFiles) -> None:
    (files.workspace / "configs" / "experiment.yaml").write_text("a: !!python/object:os.system x\n")
    with pytest.raises(InvalidInput) as info:
        files.read_document("configs/experiment.yaml", {"max_bytes": 1000, "max_depth": 5, "max_nodes": 50})
    assert "working-tree configs/experiment.yaml" in info.value.reason and "git checkout" in info.value.remediation
