"""Run slots shared by the server processes of one state dir (server/slots.py): leases are real
files, holders are real processes, a replica killed with SIGKILL is a real SIGKILL."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from server.slots import LEASE_NAME, WAIT_NOTICE_S, RunSlots
from tools.errors import PolicyDenied

REPO = Path(__file__).parents[2]
LINE_TIMEOUT_S = 60
RUN_ID = "e" * 32

# A replica in miniature: takes a slot (naming the run of argv[2] when given), says "held", gives it
# back on a line from stdin, says "released", then stays alive until stdin closes.
HOLDER = """
import sys, anyio
from pathlib import Path
from server.slots import RunSlots

async def nothing(message):
    pass

async def main():
    async with RunSlots(1, state_dir=Path(sys.argv[1])).hold(nothing) as lease:
        if len(sys.argv) > 2:
            await lease.name_run(sys.argv[2])  # as run_experiment(detach=true) does once the run exists
        print("held", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    sys.stdin.read()

anyio.run(main)
"""

# Takes the last slot as often as it can; inside a slot it claims a marker file with O_EXCL, which
# fails only if another process is inside a slot at the same time.
RACER = """
import json, os, sys, anyio
from pathlib import Path
from server.slots import RunSlots
from tools.errors import PolicyDenied

state_dir, attempts = Path(sys.argv[1]), int(sys.argv[2])
slots = RunSlots(1, state_dir=state_dir)
counts = {"took": 0, "refused": 0, "overlaps": 0}

async def nothing(message):
    pass

async def attempt():
    try:
        async with slots.hold(nothing):
            counts["took"] += 1
            try:
                fd = os.open(state_dir / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                counts["overlaps"] += 1
                return
            await anyio.sleep(0)
            os.close(fd)
            os.unlink(state_dir / "inside")
    except PolicyDenied:
        counts["refused"] += 1

async def main():
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(attempts):
        await attempt()
    print(json.dumps(counts), flush=True)

anyio.run(main)
"""


async def _nothing(message: str) -> None:
    pass


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)


def _line(process: subprocess.Popen[str]) -> str:
    """The next line the process prints (bounded wait)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], LINE_TIMEOUT_S)
    assert ready, "the process said nothing in time"
    return process.stdout.readline().strip()


def _say(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the only slot of `tmp_path`."""
    process = _start(HOLDER, str(tmp_path))
    assert _line(process) == "held"
    yield process
    process.kill()
    process.communicate(timeout=LINE_TIMEOUT_S)


@pytest.fixture
def launching(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the only slot of `tmp_path` for the run RUN_ID, as a detached run's
    call does until its worker is launched."""
    process = _start(HOLDER, str(tmp_path), RUN_ID)
    assert _line(process) == "held"
    yield process
    process.kill()
    process.communicate(timeout=LINE_TIMEOUT_S)


def _leases(state_dir: Path) -> list[Path]:
    return [p for p in (state_dir / "slots").iterdir() if LEASE_NAME.fullmatch(p.name)]


@pytest.mark.anyio
async def test_a_second_replica_is_refused_the_last_slot_until_the_first_gives_it_back(tmp_path: Path) -> None:
    first, second = RunSlots(1, state_dir=tmp_path), RunSlots(1, state_dir=tmp_path)
    async with first.hold(_nothing):
        assert second.running == 1
        with pytest.raises(PolicyDenied) as refused:
            async with second.hold(_nothing):
                pass
        assert refused.value.rule_id == "training.concurrency"
    assert second.running == 0 and _leases(tmp_path) == []
    async with second.hold(_nothing):
        assert first.running == 1


@pytest.mark.anyio
async def test_a_slot_is_given_back_when_the_body_raises_or_is_cancelled(tmp_path: Path) -> None:
    slots = RunSlots(1, state_dir=tmp_path)
    with pytest.raises(RuntimeError):
        async with slots.hold(_nothing):
            raise RuntimeError("training failed")
    with anyio.move_on_after(0):
        async with slots.hold(_nothing):
            await anyio.sleep_forever()
    assert slots.running == 0 and _leases(tmp_path) == []


@pytest.mark.anyio
async def test_another_processes_slot_counts_and_after_a_sigkill_is_freed_and_removed(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    slots = RunSlots(1, state_dir=tmp_path)
    assert slots.running == 1
    with pytest.raises(PolicyDenied):
        async with slots.hold(_nothing):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=LINE_TIMEOUT_S)
    assert slots.running == 0 and _leases(tmp_path) == []  # the dead holder's lease went when found
    async with slots.hold(_nothing):
        assert len(_leases(tmp_path)) == 1


@pytest.mark.anyio
async def test_a_waiting_call_gets_a_slot_another_process_frees_within_the_notice_interval(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    slots = RunSlots(1, "wait", state_dir=tmp_path)
    waiting, got = anyio.Event(), anyio.Event()
    notices: list[str] = []

    async def on_wait(message: str) -> None:
        notices.append(message)
        waiting.set()

    async def take() -> None:
        async with slots.hold(on_wait):
            got.set()

    async with anyio.create_task_group() as group:
        group.start_soon(take)
        with anyio.fail_after(LINE_TIMEOUT_S):
            await waiting.wait()
        _say(holder, "release")
        assert _line(holder) == "released"
        freed_at = time.monotonic()
        with anyio.fail_after(WAIT_NOTICE_S + 5):
            await got.wait()
    assert time.monotonic() - freed_at <= WAIT_NOTICE_S + 1
    assert holder.poll() is None  # freed by the holder, not found dead
    assert notices[0] == "waiting for a run slot (1/1 busy)"


@pytest.mark.anyio
async def test_a_symlink_among_the_leases_is_not_followed_nor_counted(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    async with RunSlots(1, state_dir=elsewhere).hold(_nothing):
        live_lease = _leases(elsewhere)[0]  # a lease of this live process, outside the state dir
        state_dir = tmp_path / "state"
        (state_dir / "slots").mkdir(parents=True)
        (state_dir / "slots" / ("a" * 32)).symlink_to(live_lease)
        os.mkfifo(state_dir / "slots" / ("b" * 32))  # opened blocking, a FIFO would hang the count
        slots = RunSlots(1, state_dir=state_dir)
        assert slots.running == 0
        async with slots.hold(_nothing):
            assert slots.running == 1
        assert live_lease.exists() and (state_dir / "slots" / ("a" * 32)).is_symlink()


def test_a_forged_lease_of_a_live_process_takes_a_slot_and_an_unreadable_one_counts(tmp_path: Path) -> None:
    (tmp_path / "slots").mkdir()
    slots = RunSlots(3, state_dir=tmp_path)
    live = {"mlgate.server.host": socket.gethostname(), "mlgate.server.pid": str(os.getppid())}
    (tmp_path / "slots" / ("c" * 32)).write_text(json.dumps({"holder": live}))
    (tmp_path / "slots" / ("d" * 32)).write_text("not json")
    (tmp_path / "slots" / ("0" * 32)).write_text("null")
    assert slots.running == 3  # each denies more runs; none grants one


def test_two_processes_racing_for_the_last_slot_never_hold_it_together(tmp_path: Path) -> None:
    racers = [_start(RACER, str(tmp_path), "150") for _ in range(2)]
    try:
        assert [_line(r) for r in racers] == ["ready", "ready"]
        for racer in racers:
            _say(racer, "go")
        counts = [json.loads(_line(r)) for r in racers]
    finally:
        for racer in racers:
            racer.kill()
            racer.communicate(timeout=LINE_TIMEOUT_S)
    assert [c["overlaps"] for c in counts] == [0, 0], counts
    assert all(c["took"] > 0 for c in counts) and sum(c["refused"] for c in counts) > 0, counts  # they did contend
    assert _leases(tmp_path) == []


def test_a_lease_naming_a_run_does_not_count_for_that_runs_worker_and_counts_for_everyone_else(tmp_path: Path, launching: subprocess.Popen[str]) -> None:
    [lease] = _leases(tmp_path)
    document = json.loads(lease.read_text())
    assert document["run_id"] == RUN_ID and document["holder"]["mlgate.server.pid"] == str(launching.pid)
    assert stat.S_IMODE(lease.lstat().st_mode) == 0o600 and lease.is_file() and not lease.is_symlink()
    assert RunSlots(1, state_dir=tmp_path, own_run=RUN_ID).running == 0  # the worker of RUN_ID: its own slot
    assert RunSlots(1, state_dir=tmp_path).running == 1  # any other call
    assert RunSlots(1, state_dir=tmp_path, own_run="f" * 32).running == 1  # the worker of another run


@pytest.mark.anyio
async def test_a_call_is_refused_the_slot_a_lease_names_for_another_run(tmp_path: Path, launching: subprocess.Popen[str]) -> None:
    with pytest.raises(PolicyDenied) as refused:
        async with RunSlots(1, state_dir=tmp_path).hold(_nothing):
            pass
    assert refused.value.rule_id == "training.concurrency"
    _say(launching, "release")
    assert _line(launching) == "released"
    assert _leases(tmp_path) == [] and RunSlots(1, state_dir=tmp_path).running == 0


@pytest.mark.anyio
async def test_naming_the_run_rewrites_the_lease_in_place_and_a_sigkilled_holders_named_lease_is_freed(tmp_path: Path, launching: subprocess.Popen[str]) -> None:
    slots = RunSlots(2, state_dir=tmp_path)
    async with slots.hold(_nothing) as lease:
        before = set(_leases(tmp_path))
        await lease.name_run("a" * 32)
        assert set(_leases(tmp_path)) == before  # the same lease, rewritten: never two, never none
        assert [p.name for p in (tmp_path / "slots").iterdir() if p.name.startswith(".")] == []  # no temp file left
        assert json.loads(lease.path.read_text())["run_id"] == "a" * 32
        launching.send_signal(signal.SIGKILL)
        launching.wait(timeout=LINE_TIMEOUT_S)
        assert slots.running == 1 and _leases(tmp_path) == [lease.path]  # the dead holder's lease went
    assert _leases(tmp_path) == []
