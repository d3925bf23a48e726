"""AuditChain on real files: linking, resuming, torn tails, batching, threads and processes."""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from server.audit import GENESIS_HASH, AuditChain, AuditOptions, canonical, read_anchor, verify
from server.clock import SystemClock
from tests.server.audit.helpers import TickingClock, build_chain, lines, wait_for
from tools.errors import IntegrityError

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.jsonl"


def _anchor(path: Path):
    return read_anchor(path.with_name("audit.head"))


def test_records_are_chained_with_seq_time_prev_and_hash(path: Path) -> None:
    chain = AuditChain(path, clock=TickingClock())
    first = chain.append({"kind": "decision", "tool": "load_dataset"})
    second = chain.append({"kind": "outcome", "status": "ok"})
    chain.close()
    assert (first["seq"], first["prev"], first["time"]) == (0, GENESIS_HASH, "2030-01-01T00:00:00.000001Z")
    assert second["seq"] == 1 and second["prev"] == first["hash"]
    body = {k: v for k, v in second.items() if k != "hash"}
    assert second["hash"] == hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert lines(path) == [canonical(first) + b"\n", canonical(second) + b"\n"]


def test_time_is_iso_utc_from_the_system_clock_by_default(path: Path) -> None:
    chain = AuditChain(path, clock=SystemClock())
    stamp = chain.append({"kind": "decision"})["time"]
    chain.close()
    assert stamp.endswith("Z") and stamp[10] == "T"


@pytest.mark.parametrize(
    "record",
    [
        {"seq": 5},
        {"hash": "0" * 64},
        {"value": object()},
        {"value": float("nan")},
        {"value": float("inf")},
        {"nested": {1: "int key"}},
        {"value": b"bytes"},
        {"value": {"a", "set"}},
        {"deep": [{"ok": 1}, {"bad": object()}]},
    ],
    ids=["sets-seq", "sets-hash", "object", "nan", "inf", "int-key", "bytes", "set", "nested-object"],
)
def test_records_that_are_not_plain_json_or_set_chain_fields_are_refused_and_nothing_is_written(path: Path, record: dict) -> None:
    chain = AuditChain(path)
    with pytest.raises((TypeError, ValueError)):
        chain.append(record)
    chain.close()
    assert path.read_bytes() == b""


def test_refusal_names_the_place_but_not_the_value(path: Path) -> None:
    chain = AuditChain(path)
    with pytest.raises(TypeError) as caught:
        chain.append({"token": {"secret": b"hunter2"}})
    chain.close()
    assert "record.token.secret" in str(caught.value) and "hunter2" not in str(caught.value)


def test_restart_resumes_the_chain_after_its_head(path: Path) -> None:
    build_chain(path, 3)
    before = _anchor(path)
    chain = AuditChain(path)
    record = chain.append({"kind": "decision", "after": "restart"})
    chain.close()
    assert record["seq"] == 3 and record["prev"] == before.hash
    assert verify(path).ok and verify(path).count == 4


def test_torn_tail_from_a_crash_is_quarantined_and_recorded_on_open(path: Path) -> None:
    build_chain(path, 3)
    torn = b'{"kind":"decision","n":3,"pr'
    with path.open("ab") as handle:
        handle.write(torn)
    chain = AuditChain(path)
    chain.close()
    note = json.loads(lines(path)[-1])
    digest = hashlib.sha256(torn).hexdigest()
    assert (note["kind"], note["seq"], note["torn_bytes"], note["torn_sha256"]) == ("recovered_torn_tail", 3, len(torn), digest)
    assert path.with_name(note["quarantine"]).read_bytes() == torn
    assert note["quarantine"] == f"audit.torn-3-{digest[:12]}"
    assert verify(path).ok and _anchor(path).seq == 3


def test_opening_refuses_a_chain_truncated_below_its_anchor_and_changes_nothing(path: Path) -> None:
    build_chain(path, 4)
    path.write_bytes(b"".join(lines(path)[:2]))
    before = path.read_bytes()
    with pytest.raises(IntegrityError) as caught:
        AuditChain(path)
    assert caught.value.rule_id == "audit.truncated" and "mlgate audit verify" in caught.value.remediation
    assert path.read_bytes() == before


def test_opening_refuses_a_torn_cut_inside_the_anchored_records(path: Path) -> None:
    build_chain(path, 4)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(IntegrityError) as caught:
        AuditChain(path)
    assert caught.value.rule_id == "audit.truncated"
    assert list(path.parent.glob("audit.torn-*")) == []


def test_opening_refuses_a_chain_whose_anchor_is_missing(path: Path) -> None:
    build_chain(path, 2)
    path.with_name("audit.head").unlink()
    with pytest.raises(IntegrityError) as caught:
        AuditChain(path)
    assert caught.value.rule_id == "audit.anchor_missing"


def test_opening_refuses_a_chain_rewritten_under_its_anchor(path: Path) -> None:
    build_chain(path, 3)
    forged = build_chain(path.parent / "forged" / "audit.jsonl", 3, tool="u")
    path.write_bytes(forged.read_bytes())
    with pytest.raises(IntegrityError) as caught:
        AuditChain(path)
    assert caught.value.rule_id == "audit.anchor_mismatch"


def test_opening_refuses_a_record_edited_past_the_anchor_and_changes_nothing(path: Path) -> None:
    """As after a crash before the batch's anchor: the records past it are checked on open, not
    just the last one, so nothing is appended (and anchored, and signed) beyond the damage."""
    build_chain(path, 4)
    anchored = lines(path)[:2]
    path.with_name("audit.head").write_bytes(canonical(_head_of(anchored)) + b"\n")
    edited = lines(path)
    edited[2] = edited[2].replace(b'"n":2', b'"n":9')
    path.write_bytes(b"".join(edited))
    before = path.read_bytes()
    with pytest.raises(IntegrityError) as caught:
        AuditChain(path)
    assert caught.value.rule_id == "audit.diverged" and "after seq 1" in caught.value.reason
    assert path.read_bytes() == before


def _head_of(anchored: list[bytes]) -> dict:
    last = json.loads(anchored[-1])
    return {"seq": last["seq"], "hash": last["hash"], "offset": sum(map(len, anchored))}


def test_opening_adopts_intact_records_past_the_anchor(path: Path) -> None:
    build_chain(path, 4)
    anchored = lines(path)[:2]
    path.with_name("audit.head").write_bytes(canonical(_head_of(anchored)) + b"\n")
    chain = AuditChain(path)
    assert chain.head.seq == 3 and chain.append({"kind": "decision"})["seq"] == 4
    chain.close()
    assert verify(path).ok


def test_head_is_anchored_after_each_batch_of_fsync_every_records(path: Path) -> None:
    chain = AuditChain(path, options=AuditOptions(fsync_every=2, fsync_interval_ms=60_000))
    assert _anchor(path).seq == -1
    chain.append({"n": 0})
    chain.append({"n": 1})
    assert _anchor(path).seq == 1
    chain.append({"n": 2})
    assert _anchor(path).seq == 1
    chain.close()
    assert _anchor(path).seq == 2 and _anchor(path).offset == path.stat().st_size


def test_unsynced_records_are_anchored_within_the_fsync_interval(path: Path) -> None:
    chain = AuditChain(path, options=AuditOptions(fsync_every=1000, fsync_interval_ms=10))
    chain.append({"n": 0})
    assert wait_for(lambda: _anchor(path).seq == 0)
    chain.close()


def test_threads_appending_at_once_produce_one_valid_chain(path: Path) -> None:
    chain = AuditChain(path, options=AuditOptions(fsync_every=16))

    def worker(name: int) -> None:
        for n in range(50):
            chain.append({"kind": "decision", "thread": name, "n": n})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    chain.close()
    report = verify(path)
    assert report.ok and report.count == 400 and report.head_seq == 399


def test_two_writers_on_one_file_interleave_into_one_chain(path: Path) -> None:
    server, cli = AuditChain(path), AuditChain(path)
    for n in range(5):
        server.append({"writer": "server", "n": n})
        cli.append({"writer": "cli", "n": n})
    server.close()
    cli.close()
    report = verify(path)
    assert report.ok and report.count == 10 and _anchor(path).seq == 9


_WRITER = """
import sys
from server.audit import AuditChain, AuditOptions
chain = AuditChain(sys.argv[1], options=AuditOptions(fsync_every=8))
for n in range(int(sys.argv[2])):
    chain.append({"kind": "decision", "writer": sys.argv[3], "n": n})
chain.close()
"""


def test_two_processes_appending_at_once_produce_one_valid_chain(path: Path) -> None:
    AuditChain(path).close()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), "300", name], cwd=REPO_ROOT, env=env) for name in "ab"]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    records = [json.loads(line) for line in lines(path)]
    assert verify(path).ok and len(records) == 600
    for name in "ab":
        assert [r["n"] for r in records if r["writer"] == name] == list(range(300))


def test_append_refuses_when_the_file_was_truncated_behind_the_chain(path: Path) -> None:
    chain = AuditChain(path)
    for n in range(3):
        chain.append({"n": n})
    os.truncate(path, len(lines(path)[0]))
    with pytest.raises(IntegrityError) as caught:
        chain.append({"n": 3})
    assert caught.value.rule_id == "audit.truncated" and len(lines(path)) == 1


def test_append_refuses_when_the_file_was_replaced_behind_the_chain(path: Path) -> None:
    chain = AuditChain(path)
    chain.append({"n": 0})
    replacement = path.with_name("other.jsonl")
    replacement.write_bytes(b"")
    os.replace(replacement, path)
    with pytest.raises(IntegrityError) as caught:
        chain.append({"n": 1})
    assert caught.value.rule_id == "audit.replaced" and path.read_bytes() == b""


def test_append_refuses_records_that_do_not_extend_its_head(path: Path) -> None:
    chain = AuditChain(path)
    chain.append({"n": 0})
    with path.open("ab") as handle:
        handle.write(lines(path)[0])
    with pytest.raises(IntegrityError) as caught:
        chain.append({"n": 1})
    assert caught.value.rule_id == "audit.diverged"


def test_lock_held_by_another_process_is_refused_after_the_timeout(path: Path) -> None:
    chain = AuditChain(path, options=AuditOptions(lock_timeout_ms=50))
    holder = os.open(path.with_name("audit.lock"), os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(IntegrityError) as caught:
            chain.append({"n": 0})
    finally:
        os.close(holder)
    assert caught.value.rule_id == "audit.locked" and path.read_bytes() == b""
    assert chain.append({"n": 0})["seq"] == 0


def test_closed_chain_refuses_appends(path: Path) -> None:
    chain = AuditChain(path)
    chain.close()
    with pytest.raises(IntegrityError) as caught:
        chain.append({"n": 0})
    assert caught.value.rule_id == "audit.closed"


def test_tail_returns_the_last_records_oldest_first(path: Path) -> None:
    build_chain(path, 6)
    chain = AuditChain(path, options=AuditOptions(tail_default=4))
    assert [r["seq"] for r in chain.tail()] == [2, 3, 4, 5]
    assert [r["seq"] for r in chain.tail(2)] == [4, 5]
    chain.close()


def test_tail_is_capped_by_tail_max(path: Path) -> None:
    build_chain(path, 6)
    chain = AuditChain(path, options=AuditOptions(tail_max=3))
    assert [r["seq"] for r in chain.tail(100)] == [3, 4, 5]
    chain.close()


def test_a_chain_nobody_closed_releases_its_descriptors_when_collected(path: Path) -> None:
    AuditChain(path).close()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        AuditChain(path).append({"kind": "decision"})
    # Each pending fsync timer keeps its chain alive until it has synced the chain.
    assert wait_for(lambda: gc.collect() >= 0 and len(os.listdir("/proc/self/fd")) <= before, timeout=30.0)  # loaded CI hosts
    assert verify(path).ok and verify(path).count == 20 and _anchor(path).seq == 19


def test_a_claim_two_writers_race_for_is_chained_once(path: Path) -> None:
    # two processes' chains on one file (a worker and a second worker the agent started): each asks,
    # under the chain's lock and after adopting the other's records, whether the claim is taken
    first, second = AuditChain(path), AuditChain(path)
    claim = {"kind": "detached_run", "event": "started", "call_id": "c" * 32}

    def taken() -> bool:
        return any(json.loads(line).get("event") == "started" for line in path.read_bytes().splitlines())

    won = first.append_unless(claim, taken)
    lost = second.append_unless(claim, taken)
    after = second.append({"kind": "outcome", "status": "ok"})
    first.close()
    second.close()
    assert won is not None and won["seq"] == 0 and lost is None and after["seq"] == 1
    assert [json.loads(line)["event"] for line in lines(path)[:1]] == ["started"] and len(lines(path)) == 2
    assert verify(path).ok
