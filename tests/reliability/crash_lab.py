"""Workspaces, restarts and checks for the governed crash modes (tests/reliability/crash_worker.py
run, promotion, approval), shared by tests/reliability/test_crash_points.py and bench/reliability.py.

A worker is SIGKILLed at a random moment after it announced a unit (`begin`); the workspace is then
restarted as `mlgate serve` would (the chain opened, recovering a torn tail; server/recovery.py) and
checked:

    run        no run left RUNNING (each killed one FAILED with a reason), every acknowledged run
               FINISHED, every acknowledged call audited (decision and outcome)
    promotion  every alias points where mlgate's alias history says, every version's stage tag is
               the stage the history gave it (no tag on a version whose move never completed), the
               aliased version's promote decision is in the chain, every acknowledged version was
               recorded by the history
    approval   `mlgate audit verify`'s approval checks find nothing (no file disagreeing with the
               chain), every acknowledged approval is approved
and for all: the chain verifies.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from server.approval_vouch import vouch_problems
from server.audit import AuditChain, verify
from server.ports import build_ports
from server.recovery import recover
from server.settings import load_settings
from tests.reliability.crash_worker import APPROVER_TOKEN_FILE

ROOT = Path(__file__).resolve().parents[2]
LAB_FILE = "crash-lab.json"
MODEL = "demo-bank-credit-default"
# seconds after `begin` within which a kill lands (about one unit's length)
KILL_WINDOW_S = {"run": 25.0, "promotion": 3.0, "approval": 1.5}


# --- workspaces ---------------------------------------------------------------------------------


def run_workspace(root: Path) -> Path:
    from server.workspace import init_workspace  # noqa: PLC0415
    from tests.reliability.load import prepare  # noqa: PLC0415

    workspace = init_workspace(root / "ws")
    prepare(workspace, root, rows=300)
    return workspace


def promotion_workspace(root: Path) -> Path:
    """The promotion lab (a real run on a PR branch); its run id beside the workspace."""
    from tests.tools.promotion_lab import build_lab  # noqa: PLC0415

    lab = build_lab(root)
    lab.ports.audit.close()
    (root / LAB_FILE).write_text(json.dumps({"run_id": lab.run_id}))
    return lab.workspace


def approval_workspace(root: Path) -> Path:
    """A workspace and a human approver's token (issued by an operator) beside it."""
    from server.workspace import init_workspace  # noqa: PLC0415
    from tests.credentials import issue  # noqa: PLC0415

    workspace = init_workspace(root / "ws")
    (root / APPROVER_TOKEN_FILE).write_text(issue(load_settings(workspace).state_dir, "crash-approver"))
    return workspace


WORKSPACES = {"run": run_workspace, "promotion": promotion_workspace, "approval": approval_workspace}


def promotable_clone(workspace: Path, ports: Any) -> str:
    """A new FINISHED run cloned from the lab's run (same commit, data, metrics, model)."""
    from tests.tools.promotion_lab import clone_run  # noqa: PLC0415

    run_id = json.loads((workspace.parent / LAB_FILE).read_text())["run_id"]
    return clone_run(SimpleNamespace(client=ports.tracking.client, ports=ports), run_id)


def protected_change(suffix: str) -> dict[str, Any]:
    reasoning = {"hypothesis_category": "baseline", "change_description": f"Predict churn ({suffix}) for the retention team", "expected_effect": "a churn model as good as the default model"}
    return {"changes": {"data.target": f"churn_{suffix.replace('-', '_')}"}, "reasoning": reasoning}


# --- kill, restart --------------------------------------------------------------------------------


def kill_in_unit(workspace: Path, mode: str, tag: str, rng: random.Random) -> tuple[list[str], str | None]:
    """Start the worker, let it begin 1-2 units, SIGKILL it at a random moment inside the last one.
    Returns (acknowledged units, why the worker died on its own or None)."""
    argv = [sys.executable, "-m", "tests.reliability.crash_worker", mode, str(workspace), tag]
    worker = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, begins, target = [], 0, rng.randint(1, 2)
    try:
        while begins < target:
            line = worker.stdout.readline().decode()
            if not line:
                return _acks(lines), worker.stderr.read().decode()[-2000:] or "exited"
            lines.append(line)
            begins += line.startswith("begin")
        try:  # the kill lands somewhere in the unit; a worker that ends the unit by dying is a finding
            worker.wait(timeout=rng.uniform(0, KILL_WINDOW_S[mode]))
            return _acks(lines), worker.stderr.read().decode()[-2000:] or "exited"
        except subprocess.TimeoutExpired:
            pass
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=60)
    rest = worker.stdout.read().decode().splitlines()
    return _acks(lines + rest), None


def _acks(lines: list[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("ack ")]


def restart(workspace: Path) -> dict[str, list]:
    """What a restarted server does first: open the chain (quarantining a torn tail), then repair
    what the dead one left half-done (server/recovery.py). Returns what was repaired."""
    settings = load_settings(workspace, transport="memory")
    AuditChain(settings.audit_path).close()
    ports = build_ports(settings)
    try:
        return recover(ports)
    finally:
        ports.audit.close()


# --- checks -------------------------------------------------------------------------------------


def records(workspace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in load_settings(workspace).audit_path.read_bytes().splitlines()]


def allowed_calls(chained: list[dict[str, Any]], tool: str) -> int:
    return sum(1 for r in chained if r.get("kind") == "decision" and r.get("tool") == tool and r.get("decision") == "allow" and not r.get("dry_run"))


def chain_problems(workspace: Path) -> list[str]:
    report = verify(load_settings(workspace).audit_path)
    return [] if report.ok else [f"chain does not verify: {report.summary()}"]


def run_problems(workspace: Path, acked: list[str]) -> list[str]:
    """No run left RUNNING, killed runs FAILED with a reason, acknowledged runs FINISHED and audited,
    no run without an allowed run_experiment decision before it."""
    from server.tracking import END_REASON_TAG  # noqa: PLC0415

    ports = build_ports(load_settings(workspace, transport="memory"))
    try:
        runs = [r for e in ports.tracking.client.search_experiments() for r in ports.tracking.client.search_runs([e.experiment_id], max_results=5000)]
    finally:
        ports.audit.close()
    status = {r.info.run_id: r.info.status for r in runs}
    found = [f"run {i[:12]} is {s}" for i, s in status.items() if s not in ("FINISHED", "FAILED")]
    found += [f"failed run {r.info.run_id[:12]} has no reason" for r in runs if r.info.status == "FAILED" and not r.data.tags.get(END_REASON_TAG)]
    found += [f"acknowledged run {i[:12]} is {status.get(i)}" for i in acked if status.get(i) != "FINISHED"]
    chained = records(workspace)
    ok_runs = {r.get("run_id") for r in chained if r.get("kind") == "outcome" and r.get("tool") == "run_experiment" and r.get("status") == "ok"}
    found += [f"acknowledged run {i[:12]} has no ok outcome in the chain" for i in acked if i not in ok_runs]
    if len(runs) > allowed_calls(chained, "run_experiment"):
        found.append(f"{len(runs)} MLflow runs for {allowed_calls(chained, 'run_experiment')} allowed run_experiment calls")
    return found + chain_problems(workspace)


def promotion_problems(workspace: Path, acked: list[str]) -> list[str]:
    """Aliases where the history says, stage tags as recorded, every recorded move preceded by an
    allowed promote decision, every acknowledged version recorded."""
    from policies.lifecycle import STAGE_TAG  # noqa: PLC0415

    ports = build_ports(load_settings(workspace, transport="memory"))
    registry, found = ports.registry, []
    try:
        for model in registry.list_models():
            name = model["name"]
            for alias, version in model["aliases"].items():
                if (registry.stack(name, alias) or [None])[-1] != version:
                    found.append(f"{name}@{alias} points at {version}, the history at {registry.stack(name, alias)[-1:]}")
            for row in model["versions"]:
                current = registry.version(name, row["version"])
                tag, recorded = current["tags"].get(STAGE_TAG), registry.recorded_stage(name, row["version"])
                if tag != recorded and not (recorded is None and current["aliases"]):
                    found.append(f"{name} version {row['version']} is tagged {tag}, the history says {recorded}")
        events = registry.events(MODEL, "candidate")
    finally:
        ports.audit.close()
    recorded_versions = {e.get("version") for e in events}
    found += [f"acknowledged version {v} is not in the alias history" for v in acked if v not in recorded_versions]
    allowed = allowed_calls(records(workspace), "promote")
    if len(events) > allowed:
        found.append(f"{len(events)} alias moves recorded for {allowed} allowed promote calls")
    return found + chain_problems(workspace)


def approval_problems(workspace: Path, acked: list[str]) -> list[str]:
    """Nothing `mlgate audit verify` would report about approvals, every acknowledged one approved."""
    from server.approvals import ApprovalStore  # noqa: PLC0415

    state = load_settings(workspace).state_dir
    found = vouch_problems(state)
    store = ApprovalStore(state)
    found += [f"acknowledged approval {i} is {store.get(i)['status']}" for i in acked if store.get(i)["status"] != "approved"]
    return found + chain_problems(workspace)


CHECKS = {"run": run_problems, "promotion": promotion_problems, "approval": approval_problems}


def crash_rounds(mode: str, workspace: Path, kills: int, seed: int) -> dict[str, Any]:
    """`kills` rounds of kill -9 inside a unit and a restart; then the mode's checks.
    Returns {acked, died (workers that died on their own), repaired (what restarts repaired), problems}."""
    rng, acked, died, repaired = random.Random(seed), [], [], []
    for round_ in range(kills):
        units, death = kill_in_unit(workspace, mode, f"k{round_}", rng)
        acked += units
        died += [death] if death else []
        repaired += [r for r in restart(workspace).values() if r]
    return {"acked": acked, "died": died, "repaired": repaired, "problems": CHECKS[mode](workspace, acked)}
