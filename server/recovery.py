"""What a server does when it starts, before it trusts its state: finish or undo what a killed
predecessor (kill -9, power loss) left half-done. The audit chain recovers its own torn tail when it
is opened (server/audit/chain.py); the rest is here:

    runs       RUNNING runs whose server process or detached worker is gone become FAILED with a
               reason (server/detached_runs.py `reconcile`, server/tracking.py `reconcile_orphans`);
               processes their sandboxes left are killed (server/sandbox_leftovers.py), the reason
               says how many, and their copies of dataset rows deleted; `sandboxes` lists what was killed in runs that had already ended
    approvals  an approval file one step behind the chain (the chain records a decision or use first,
               then the file is rewritten: a kill between the two) is rewritten from the chain
    registry   an alias move is recorded in mlgate's alias history after MLflow's pointer moves and
               the stage tags change; a kill in between leaves an alias pointing at a version whose
               move was never recorded. The history is the record: the alias is put back where the
               history says (removed when it says nowhere) and every version's stage tag is set back
               to the stage the history last gave it. A version registered whose move never
               completed keeps no alias and no stage; it is listed (a retried promote reuses it).
    overrides  the protected-field overrides log is written after the `overrides_logged` record that
               vouches for its lines (server/approvals.py); lines the record holds and the log lacks
               are appended with their original witness (a line deleted by hand comes back too)

Runs and aliases are this project's only (its experiment `<client>/<project>` and its model
`<client>-<project>`, from the acknowledged standards): a tracking store shared by several projects
holds other projects' runs and models, which their own servers reconcile against their own histories.
Each part is repaired on its own and retried once; a part that still fails is named in the record
(`not_repaired`) and on stderr, and the others are repaired all the same. Each repair lists what it
repaired as it goes, so what a failed first attempt did is in the record beside what the retry did.

Whatever was repaired is appended to the audit chain as one `recovered` record, so a repair (or a
pointer moved outside mlgate that this undid) is visible to `mlgate audit verify` readers.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from server.sandbox_leftovers import kill_run_leftovers, sweep_leftovers
from server.tracking import project_experiment

# (status in the file, status in the chain): a rewrite the chain already recorded, cut short
LAGGING = {("pending", "approved"), ("pending", "denied"), ("approved", "consumed")}


def recover(ports: Any, warn: Callable[[str], None] | None = None) -> dict[str, list]:
    """Repair runs, approval files and aliases left half-done; record what was repaired in the
    chain. Returns {runs, approvals, registry, overrides} (empty lists when nothing was found),
    sandboxes when processes a dead launcher's sandbox left in an ended run were killed, and
    not_repaired [{part, error}] for parts that failed twice: they are in the record too, and
    `warn` (a line on stderr by default: stdout is the MCP channel) says which."""
    found, failed = {}, []
    for part, repair in _parts(ports).items():
        found[part], error = _twice(repair)
        if error is not None:
            failed.append({"part": part, "error": _named(error)})
    swept = sweep_leftovers(ports.rundirs.root) if getattr(ports, "rundirs", None) is not None else []
    if swept:  # after the runs: a RUNNING run's reason counts its own
        found["sandboxes"] = swept
    if failed:
        found["not_repaired"] = failed
        (warn or _stderr)(not_repaired_line(failed))
    if any(found.values()):
        ports.audit.append({"kind": "recovered", **found})
        ports.audit.sync()
    return found


Repair = Callable[[list], object]  # appends each thing it repaired to the list, as it goes


def _parts(ports: Any) -> dict[str, Repair]:
    """The repairs, each run on its own: one that fails leaves the others done."""
    overrides = getattr(ports, "overrides", None)
    return {
        "runs": lambda done: reconcile_runs(ports, done),
        "approvals": lambda done: repair_approval_files(ports.approvals, done),
        "registry": lambda done: reconcile_registry(ports.registry, own_model(ports), done) if ports.registry is not None else None,
        # lines an approved override's record vouches for, cut off by a kill before they were written (one write)
        "overrides": lambda done: done.extend(overrides.restore()) if overrides is not None else None,
    }


def _twice(repair: Repair) -> tuple[list, BaseException | None]:
    """What `repair` repaired, retried once after a failure (a store briefly locked, busy or away):
    the first attempt's repairs stay listed. The error when the retry fails too, else None."""
    done: list = []
    try:
        repair(done)
        return done, None
    except Exception:  # noqa: BLE001, S110 - retried below; the retry's error is the one reported
        pass
    try:
        repair(done)
        return done, None
    except Exception as error:  # noqa: BLE001 - reported in the record, the other parts still repaired
        return done, error


def _named(error: BaseException) -> str:
    """The error's type, with a governed error's rule: never its text (a tracking URI may carry a
    password)."""
    rule = getattr(error, "rule_id", None)
    return f"{type(error).__name__}: {rule}" if rule else type(error).__name__


def not_repaired_line(failed: list[dict[str, str]]) -> str:
    parts = ", ".join(f"{f['part']} ({f['error']})" for f in failed)
    return (f"mlgate: start-up recovery could not repair {parts}; what a previous server left half-done there stays so "
            "until the next start (the audit chain's `recovered` record names it)")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def own_model(ports: Any) -> str:
    """The registered model of this workspace's project (tools/promote.py `model_name`), from its
    acknowledged standards. Raises what StandardsSource.policy_config raises."""
    from tools.promote import model_name  # noqa: PLC0415 (the tools are imported by the server, not by every command)

    return model_name(ports.standards.policy_config()["standards"])


def reconcile_runs(ports: Any, done: list | None = None) -> list[str]:
    """End FAILED the RUNNING runs of dead detached workers first (their reason names the worker),
    then those of dead servers in this project's experiment (a shared store holds other projects'
    runs); what their sandboxes left is killed (server/sandbox_leftovers.py). Each run id is
    appended to `done` as its run is ended; returns them."""
    done = [] if done is None else done
    if getattr(ports, "detached", None) is not None:
        ports.detached.reconcile(done)
    rundirs = getattr(ports, "rundirs", None)
    leftovers = functools.partial(kill_run_leftovers, rundirs.root) if rundirs is not None else None
    experiment = project_experiment(ports.standards.policy_config()["standards"])
    ports.tracking.reconcile_orphans(leftovers=leftovers, experiments=[experiment], into=done)
    if rundirs is not None:  # a killed server never reached the run's own release (tools/experiment_runner.py)
        for run_id in done:
            rundirs.release_inputs(str(run_id))
    return done


def repair_approval_files(store: Any, done: list | None = None) -> list[str]:
    """Rewrite, from the chain, approval files one step behind it. Returns their ids (appended to
    `done` one by one)."""
    repaired = [] if done is None else done
    for view in store.list():
        stored = store.stored(view["id"]) or {}
        if (stored.get("status"), view["status"]) in LAGGING:
            store.repair(view)
            repaired.append(view["id"])
    return repaired


def reconcile_registry(registry: Any, model: str, done: list | None = None) -> list[dict[str, Any]]:
    """Put every alias of `model` (this project's: on a shared store the other models are other
    projects', whose histories live with their servers) back where mlgate's history says, and every
    version's stage tag back to the stage the history gave it (server/registry.py `restore_alias`,
    `restore_stage`). Each restoration is appended to `done` as it is made."""
    found: list[dict[str, Any]] = [] if done is None else done
    listed = registry.model(model)
    if listed is None:
        return found
    for alias in sorted(listed["aliases"]):
        if restored := registry.restore_alias(model, alias):
            found.append(restored)
    for row in listed["versions"]:
        if restored := registry.restore_stage(model, row["version"]):
            found.append(restored)
    return found
