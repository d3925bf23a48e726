"""What a server does when it starts, before it trusts its state: finish or undo what a killed
predecessor (kill -9, power loss) left half-done. The audit chain recovers its own torn tail when it
is opened (server/audit/chain.py); the rest is here:

    runs       RUNNING runs whose server process or detached worker is gone become FAILED with a
               reason (server/detached_runs.py `reconcile`, server/tracking.py `reconcile_orphans`);
               processes their sandboxes left are killed (server/sandbox_leftovers.py), the reason
               says how many; `sandboxes` lists what was killed in runs that had already ended
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

Whatever was repaired is appended to the audit chain as one `recovered` record, so a repair (or a
pointer moved outside mlgate that this undid) is visible to `mlgate audit verify` readers.
"""

from __future__ import annotations

import functools
from typing import Any

from server.sandbox_leftovers import kill_run_leftovers, sweep_leftovers

# (status in the file, status in the chain): a rewrite the chain already recorded, cut short
LAGGING = {("pending", "approved"), ("pending", "denied"), ("approved", "consumed")}


def recover(ports: Any) -> dict[str, list]:
    """Repair runs, approval files and aliases left half-done; record what was repaired in the
    chain. Returns {runs, approvals, registry, overrides} (empty lists when nothing was found), and
    sandboxes when processes a dead launcher's sandbox left in an ended run were killed."""
    found = {
        "runs": reconcile_runs(ports),
        "approvals": repair_approval_files(ports.approvals),
        "registry": reconcile_registry(ports.registry) if ports.registry is not None else [],
        # lines an approved override's record vouches for, cut off by a kill before they were written
        "overrides": ports.overrides.restore() if getattr(ports, "overrides", None) is not None else [],
    }
    swept = sweep_leftovers(ports.rundirs.root) if getattr(ports, "rundirs", None) is not None else []
    if swept:  # after the runs: a RUNNING run's reason counts its own
        found["sandboxes"] = swept
    if any(found.values()):
        ports.audit.append({"kind": "recovered", **found})
        ports.audit.sync()
    return found


def reconcile_runs(ports: Any) -> list[str]:
    """End FAILED the RUNNING runs of dead detached workers first (their reason names the worker),
    then those of dead servers; what their sandboxes left is killed (server/sandbox_leftovers.py)."""
    detached = ports.detached.reconcile() if getattr(ports, "detached", None) is not None else []
    rundirs = getattr(ports, "rundirs", None)
    leftovers = functools.partial(kill_run_leftovers, rundirs.root) if rundirs is not None else None
    return [*detached, *ports.tracking.reconcile_orphans(leftovers=leftovers)]


def repair_approval_files(store: Any) -> list[str]:
    """Rewrite, from the chain, approval files one step behind it. Returns their ids."""
    repaired = []
    for view in store.list():
        stored = store.stored(view["id"]) or {}
        if (stored.get("status"), view["status"]) in LAGGING:
            store.repair(view)
            repaired.append(view["id"])
    return repaired


def reconcile_registry(registry: Any) -> list[dict[str, Any]]:
    """Put every alias back where mlgate's history says and every version's stage tag back to the
    stage the history gave it (server/registry.py `restore_alias`, `restore_stage`)."""
    found: list[dict[str, Any]] = []
    for model in registry.list_models():
        name = model["name"]
        found += [r for alias in sorted(model["aliases"]) if (r := registry.restore_alias(name, alias))]
        found += [r for row in model["versions"] if (r := registry.restore_stage(name, row["version"]))]
    return found
