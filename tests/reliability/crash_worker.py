"""A process the crash-loop test kills with SIGKILL at random points: it does one kind of governed
work in a loop and prints `ack <id>` after each unit the code has acknowledged (returned from).

    python -m tests.reliability.crash_worker audit WORKSPACE
    python -m tests.reliability.crash_worker import WORKSPACE
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

from policies import Principal
from server.audit import AuditChain
from server.settings import load_settings

OPERATOR = Principal("crash-operator", "operator", "crash-operator:000000000000")


def ack(unit: str) -> None:
    sys.stdout.write(f"ack {unit}\n")
    sys.stdout.flush()


def audit_loop(workspace: Path, tag: str) -> None:
    chain = AuditChain(load_settings(workspace).audit_path)
    for n in itertools.count():
        chain.append({"kind": "outcome", "tool": "crash_loop", "status": "ok", "unit": f"{tag}-{n}", "padding": "x" * (n % 7) * 300})
        ack(f"{tag}-{n}")


def import_loop(workspace: Path, tag: str) -> None:
    from server.cas_import import import_dataset  # noqa: PLC0415
    from server.commands.data import store_for  # noqa: PLC0415
    from server.demo_data import credit_frame  # noqa: PLC0415

    store = store_for(workspace)
    chain = AuditChain(load_settings(workspace).audit_path)
    with tempfile.TemporaryDirectory() as scratch:
        for n in itertools.count():
            source = Path(scratch) / f"part-{n}.csv"
            credit_frame(rows=40, seed=abs(hash((tag, n))) % 10_000).to_csv(source, index=False)
            imported = import_dataset(store, store.registry, chain, [source], OPERATOR)
            ack(imported.added.content_hash)


if __name__ == "__main__":
    mode, where, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    {"audit": audit_loop, "import": import_loop}[mode](where, tag)
