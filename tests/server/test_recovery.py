"""server/recovery.py: what a server repairs when it starts after a kill -9, each state made for
real with the adapters a killed call would have used, stopped where the kill would have stopped
it (tests/reliability/test_crash_points.py kills real processes at random moments)."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from policies import Principal
from policies.lifecycle import STAGE_TAG
from server.approval_vouch import vouch_problems
from server.approvals import LOG_FIELDS
from server.audit.overrides import OVERRIDES_LOG, logged_record
from server.audit.workspace import crosscheck_workspace
from server.ports import Ports
from server.recovery import recover
from server.settings import Settings
from tests.credentials import approver

MODEL = "demo-bank-credit-default"  # the workspace's own model: recovery repairs no other
AGENT = Principal("agent-1", "agent", None)


def registered(ports: Ports, model: str = MODEL) -> str:
    """A version of `model` from a fresh (finished) run, as promote registers one."""
    experiment = ports.tracking.client.create_experiment(f"e-{uuid.uuid4().hex}")
    run_id = ports.tracking.client.create_run(experiment).info.run_id
    ports.tracking.client.set_terminated(run_id)
    return ports.registry.register(model, run_id, f"file:///nowhere/{run_id}/artifacts", {"mlgate.run_id": run_id})


def test_an_alias_moved_but_never_recorded_is_put_back_and_the_stage_tags_restored(ports: Ports) -> None:
    first = registered(ports)
    ports.registry.point(MODEL, "candidate", first, {"by": "agent-1"})
    second = registered(ports)
    # the kill: MLflow's pointer and the new version's tag changed, the history never written
    ports.tracking.set_alias(MODEL, "candidate", second)
    ports.registry.set_version_tags(MODEL, second, {STAGE_TAG: "candidate"})
    found = recover(ports)
    assert ports.registry.alias_version(MODEL, "candidate") == first
    assert STAGE_TAG not in ports.registry.version(MODEL, second)["tags"]
    assert ports.registry.version(MODEL, first)["tags"][STAGE_TAG] == "candidate"
    assert {"model": MODEL, "alias": "candidate", "pointed_at": second, "restored_to": first} in found["registry"]
    assert any(r.get("kind") == "recovered" for r in ports.audit.tail(3))
    assert recover(ports) == {"runs": [], "approvals": [], "registry": [], "overrides": []}


def test_an_alias_whose_first_move_was_never_recorded_is_removed(ports: Ports) -> None:
    version = registered(ports)
    ports.tracking.set_alias(MODEL, "candidate", version)
    recover(ports)
    assert ports.registry.alias_version(MODEL, "candidate") is None


def test_an_approval_file_behind_the_chain_is_rewritten_from_it(ports: Ports, settings: Settings) -> None:
    record, _ = ports.approvals.request(change_hash="a" * 64, target="configs/experiment.yaml", diff=[], fields=[], requester=AGENT, reasoning=None, now="2026-01-01T00:00:00Z")
    stale = ports.approvals.stored(record["id"])
    ports.approvals.decide(record["id"], approve=True, approver=approver(settings.state_dir, "risk-officer"), note=None, now="2026-01-01T00:01:00Z")
    # the kill: the decision chained, the file rewrite lost
    (settings.state_dir / "approvals" / f"{record['id']}.json").write_text(json.dumps(stale))
    assert vouch_problems(settings.state_dir) != []
    assert recover(ports)["approvals"] == [record["id"]]
    assert vouch_problems(settings.state_dir) == []
    assert ports.approvals.stored(record["id"])["status"] == "approved"


def test_a_running_run_of_a_dead_server_fails_with_a_reason(ports: Ports) -> None:
    experiment = ports.tracking.client.create_experiment("demo-bank/credit-default")  # the project's experiment
    run_id = ports.tracking.start_run(experiment, {})
    ports.tracking.client.set_tag(run_id, "mlgate.server.pid", "999999999")  # its server: gone
    stage = ports.rundirs.stage_dir(run_id, "fold-0")
    rows = pd.DataFrame({"x": [1.0, 2.0]})
    ports.rundirs.write_inputs(stage, rows, rows, {}, b"")
    found = recover(ports)
    assert run_id in found["runs"]
    run = ports.tracking.get_run(run_id)
    assert run["status"] == "FAILED" and "orphaned" in run["tags"]["mlgate.end_reason"]
    assert sorted(p.name for p in (stage / "inputs").iterdir()) == ["features.py", "spec.json"]  # the rows' copies went with it


def test_override_lines_the_chain_recorded_but_a_kill_kept_out_of_the_log_are_written_on_start(ports: Ports, settings: Settings) -> None:
    entry = {"timestamp": "2026-01-01T00:02:00Z", "field": "split.test_size", "old": "0.2", "new": "0.25", "approver": "risk-officer", "config_path": "configs/experiment.yaml", "approval_id": "apr-1"}
    ports.overrides.append([entry])
    before = (settings.workspace / OVERRIDES_LOG).read_text()
    # the kill: the next override's record chained, its line never written
    text = "\t".join(str(entry[k]) for k in LOG_FIELDS).replace("0.25", "0.3")
    chained = ports.audit.append(logged_record([text], ["apr-2"]))
    assert {f.kind for f in crosscheck_workspace(settings).findings} == {"override_removed"}
    restored = recover(ports)["overrides"]
    assert restored == [f"{text}\t{chained['seq']}:{chained['hash']}"]
    assert (settings.workspace / OVERRIDES_LOG).read_text() == before + restored[0] + "\n"
    ports.audit.sync()
    assert crosscheck_workspace(settings).ok
    assert ports.audit.tail(1)[0]["kind"] == "recovered" and ports.audit.tail(1)[0]["overrides"] == restored
    assert recover(ports)["overrides"] == []  # nothing written twice


OTHER_MODEL = "other-bank-other-project"


def test_another_projects_alias_on_a_shared_store_is_left_alone_while_this_projects_is_put_back(ports: Ports) -> None:
    # another project's server promoted its champion: its history lives in that server's state dir
    theirs = registered(ports, OTHER_MODEL)
    ports.tracking.set_alias(OTHER_MODEL, "champion", theirs)
    ports.registry.set_version_tags(OTHER_MODEL, theirs, {STAGE_TAG: "champion"})
    ours = registered(ports)
    ports.tracking.set_alias(MODEL, "candidate", ours)  # a move of ours this history never recorded
    found = recover(ports)
    assert ports.registry.alias_version(OTHER_MODEL, "champion") == theirs
    assert ports.registry.version(OTHER_MODEL, theirs)["tags"][STAGE_TAG] == "champion"
    assert [r["model"] for r in found["registry"]] == [MODEL]
    assert ports.registry.alias_version(MODEL, "candidate") is None


def test_only_this_projects_runs_left_by_a_dead_server_are_failed(ports: Ports) -> None:
    ours = ports.tracking.start_run(ports.tracking.get_or_create_experiment("demo-bank/credit-default"), {})
    theirs = ports.tracking.start_run(ports.tracking.get_or_create_experiment("other-bank/other-project"), {})
    for run_id in (ours, theirs):
        ports.tracking.heartbeat.discard(run_id)
        ports.tracking.client.set_tag(run_id, "mlgate.server.pid", "999999999")  # its server: gone
    assert recover(ports)["runs"] == [ours]
    assert ports.tracking.get_run(ours)["status"] == "FAILED"
    assert ports.tracking.get_run(theirs)["status"] == "RUNNING"


def test_a_part_that_fails_twice_is_named_in_the_record_and_on_stderr_and_the_others_are_still_repaired(ports: Ports, capsys: pytest.CaptureFixture[str]) -> None:
    registered(ports)
    ports.tracking.set_alias(MODEL, "candidate", "1")
    ports.registry.root.mkdir(parents=True, exist_ok=True)
    (ports.registry.root / "aliases.json").write_text("{torn")  # the history cannot be read
    orphan = ports.tracking.start_run(ports.tracking.get_or_create_experiment("demo-bank/credit-default"), {})
    ports.tracking.heartbeat.discard(orphan)
    ports.tracking.client.set_tag(orphan, "mlgate.server.pid", "999999999")
    found = recover(ports)
    assert found["not_repaired"] == [{"part": "registry", "error": "JSONDecodeError"}] and found["runs"] == [orphan]
    assert ports.audit.tail(1)[0]["kind"] == "recovered" and ports.audit.tail(1)[0]["not_repaired"] == found["not_repaired"]
    assert "could not repair registry (JSONDecodeError)" in capsys.readouterr().err
    assert ports.registry.alias_version(MODEL, "candidate") == "1"  # left for the next start


def test_what_a_failed_first_attempt_repaired_stays_listed_beside_what_the_retry_repaired() -> None:
    from server.recovery import _twice  # noqa: PLC0415 - the retry itself: a real transient failure cannot be timed

    attempts: list[str] = []

    def flaky(done: list) -> None:  # repairs one thing, then the store is briefly busy
        attempts.append("try")
        done.append(f"repaired-{len(attempts)}")
        if len(attempts) == 1:
            raise OSError("database is locked")

    assert _twice(flaky) == (["repaired-1", "repaired-2"], None)

    def broken(done: list) -> None:
        done.append("repaired-before-failing")
        raise OSError("gone")

    repaired, error = _twice(broken)
    assert "repaired-before-failing" in repaired and isinstance(error, OSError)
