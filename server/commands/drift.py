"""`mlgate drift --dataset HASH (--run RUN_ID | --alias candidate|champion)`: the check_drift tool
at the terminal, through the enforcement point, one line per feature (worst first). Exit 0 when no
feature drifted, 1 when some did (so a monitoring job can alert on it), 2 when refused."""

from __future__ import annotations

import argparse
from typing import Any

from server.cli import add_workspace_option
from server.commands.governed import run_governed
from server.commands.insights import terminal_principal
from tools.check_drift import SPEC as CHECK_DRIFT


def register(subparsers: Any) -> None:
    drift = subparsers.add_parser("drift", help="PSI per feature of a dataset against a model's training data")
    drift.add_argument("--dataset", required=True, metavar="HASH", help="content hash of a dataset imported with `mlgate data add`")
    target = drift.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", dest="run_id", metavar="RUN_ID", help="the run whose training rows are the baseline")
    target.add_argument("--alias", choices=("candidate", "champion"), help="the registered version behind this alias")
    add_workspace_option(drift, governed=True)
    drift.set_defaults(handler=drift_command)


def report_lines(payload: dict[str, Any]) -> list[str]:
    flagged = set(payload["flagged"])
    order = payload["flagged"] + sorted((n for n in payload["psi"] if n not in flagged), key=lambda n: -payload["psi"][n])
    lines = [f"{'DRIFT' if name in flagged else 'ok':<5}  {payload['psi'][name]:>9.4f}  {name}" for name in order]
    lines += [f"{'MISSING':<5}  {'-':>9}  {name}" for name in payload["missing_features"]]
    verdict = f"{len(flagged)} of {len(payload['psi'])} features above PSI {payload['threshold']}" if flagged else f"no feature above PSI {payload['threshold']}"
    return [*lines, f"run {payload['run_id']}: {verdict}"]


def drift_command(args: argparse.Namespace) -> int:
    arguments = {"content_hash": args.dataset, **({"run_id": args.run_id} if args.run_id else {"alias": args.alias})}
    payload = run_governed(args.workspace, CHECK_DRIFT, arguments, terminal_principal(args.workspace))
    if payload is None:
        return 2
    print("\n".join(report_lines(payload)))
    return 1 if payload["drifted"] else 0
