"""Attacks on detached runs from the agent's own shell (local stdio: same OS user as the server).

The agent can read and write `<state_dir>/detached/` and start `python -m server.detached` itself.
It starts a second worker on a genuine call while the first trains, or edits the genuine request
(to run as a human, with another config) and starts a worker on it under its call id or one of its
own: each is refused and audited, and the genuine run is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.detached import REFUSED_EXIT
from tests.tools.detached_lab import detached_records, start_worker, tracking_of, training_started, wait_for_run
from tests.tools.runs_lab import REASONING, RunsLab, build_runs_lab
from tests.tools.test_cancel_run import SLOW_FEATURES

pytestmark = pytest.mark.anyio


@pytest.fixture
def lab(tmp_path: Path) -> RunsLab:
    lab = build_runs_lab(tmp_path)
    (lab.workspace / "src/features.py").write_text(SLOW_FEATURES)
    return lab


async def test_an_edited_or_second_worker_for_a_genuine_detached_call_is_refused(lab: RunsLab) -> None:
    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    run_id, call_id = started["run_id"], started["call_id"]
    await wait_for_run(lab.settings, run_id, training_started)
    request = lab.settings.state_dir / "detached" / f"{call_id}.json"
    genuine = request.read_bytes()
    second = start_worker(lab.settings, call_id)
    assert second.returncode == REFUSED_EXIT and "another worker is running this call" in second.stderr
    assert tracking_of(lab.settings).get_run(run_id)["status"] == "RUNNING"  # the genuine run trains on
    is_error, cancelled = await lab.call("cancel_run", {"run_id": run_id})
    assert not is_error and cancelled["status"] == "KILLED"
    # The agent edits the genuine request (run as a human, another config) and starts it again.
    document = json.loads(genuine)
    document["principal"] = {"name": "risk-officer", "role": "human", "credential": None}
    document["arguments"]["config"] = {"model.params.C": 0.5}
    request.write_text(json.dumps(document))
    edited = start_worker(lab.settings, call_id)
    assert edited.returncode == REFUSED_EXIT and "SHA-256 differs" in edited.stderr
    # ... or under a call id of its own.
    forged = "e" * 32
    (request.parent / f"{forged}.json").write_text(json.dumps({**document, "call_id": forged}))
    copied = start_worker(lab.settings, forged)
    assert copied.returncode == REFUSED_EXIT and "no accepted detached run" in copied.stderr
    refused = [r for r in detached_records(lab.settings) if r["event"] == "refused"]
    assert [r["call_id"] for r in refused] == [call_id, call_id, forged]
    assert [r["event"] for r in detached_records(lab.settings, call_id) if r["event"] != "refused"] == ["accepted", "started", "ended"]


async def test_a_second_worker_past_the_check_before_the_first_claimed_the_call_does_not_run_it(lab: RunsLab) -> None:
    # The agent removes <call_id>.lock while the genuine worker builds its ports (seconds) and starts
    # a second worker: its lock is on a new file and its check finds no `started` record yet. What
    # that worker holds then is exactly a vouched request; it must still not claim the call.
    from server.audit.records import parse_line
    from server.detached_vouch import Refused, Vouched, events_of
    from server.detached_work import Work

    is_error, started = await lab.call("run_experiment", {"reasoning": REASONING, "detach": True})
    assert not is_error, started
    run_id, call_id = started["run_id"], started["call_id"]
    await wait_for_run(lab.settings, run_id, training_started)
    document = json.loads((lab.settings.state_dir / "detached" / f"{call_id}.json").read_bytes())
    accepted = next(e for e in events_of(lab.settings.audit_path, call_id) if e["event"] == "accepted")
    assert parse_line((json.dumps(accepted, sort_keys=True, separators=(",", ":")) + "\n").encode())[1] is None
    with pytest.raises(Refused, match="already started"):
        Work.open(Vouched(document, accepted))
    assert [r["event"] for r in detached_records(lab.settings, call_id)].count("started") == 1
    is_error, cancelled = await lab.call("cancel_run", {"run_id": run_id})
    assert not is_error and cancelled["status"] == "KILLED"
