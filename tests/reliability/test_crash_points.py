"""kill -9 inside governed work, restart, check (tests/reliability/crash_lab.py): a server process
making run_experiment calls (training in bwrap), promotions (a version registered, the candidate
alias moved, stages changed) or approvals (a protected change proposed, `mlgate approvals approve`)
is SIGKILLed at a random moment inside a unit, then restarted as `mlgate serve` would
(server/recovery.py). Afterwards: no run RUNNING (killed ones FAILED with a reason), aliases and
stage tags as mlgate's history records them, no approval file disagreeing with the chain, every
acknowledged unit kept, the chain verifies. bench/reliability.py runs more kills per mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.reliability.crash_lab import WORKSPACES, crash_rounds

KILLS = {"run": 1, "promotion": 2, "approval": 2}


@pytest.mark.timeout(900)  # each kill starts a server and restarts one: minutes on a busy machine
@pytest.mark.parametrize("mode", ["run", "promotion", "approval"])
def test_kill_9_inside_governed_work_leaves_nothing_half_done_after_restart(tmp_path: Path, mode: str) -> None:
    workspace = WORKSPACES[mode](tmp_path)
    kills = int(os.environ.get(f"MLGATE_CRASH_KILLS_{mode.upper()}", str(KILLS[mode])))
    outcome = crash_rounds(mode, workspace, kills, seed=len(mode))
    assert outcome["died"] == [], outcome["died"]
    assert outcome["problems"] == [], outcome
