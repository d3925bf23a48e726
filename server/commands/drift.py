"""`mlgate drift --dataset HASH (--run RUN_ID | --alias candidate|champion)`: the check_drift tool
at the terminal, through the enforcement point, one line per feature (worst first). Exit 0 when no
feature drifted, 1 when some did (so a monitoring job can alert on it), 2 when refused."""

from __future__ import annotations

import argparse
from typing import Any

from server.cli import add_workspace_option
from server.commands.governed import run_governed
from server.commands.insights import terminal_principal
from server.commands.terminal import printable  # column names are the dataset's
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
    """One line a feature, highest PSI first (the highest MAX_LISTED on a wide dataset, then how
    many more and the largest of theirs), the missing ones, the verdict."""
    psi, threshold = payload["psi"], payload["threshold"]
    order = sorted(psi, key=lambda n: (-psi[n], n))
    lines = [f"{'DRIFT' if psi[name] > threshold else 'ok':<5}  {psi[name]:>9.4f}  {name}" for name in order]
    omitted = payload.get("psi_omitted")
    lines += [f"...    {omitted['features']} more features, each at most PSI {omitted['highest']:.4f}"] if omitted else []
    lines += [f"{'MISSING':<5}  {'-':>9}  {name}" for name in payload["missing_features"]]
    lines += [f"{'MISSING':<5}  {'-':>9}  {f['prefix']}<{','.join(f['numbers'])}>{f['suffix']} ({f['count']})" for f in payload.get("missing_features_families", [])]
    drifted = payload.get("flagged_total", len(payload["flagged"]))
    verdict = f"{drifted} of {payload['features']} features above PSI {threshold}" if drifted else f"no feature above PSI {threshold}"
    return [*lines, f"run {payload['run_id']}: {verdict}"]


def drift_command(args: argparse.Namespace) -> int:
    arguments = {"content_hash": args.dataset, **({"run_id": args.run_id} if args.run_id else {"alias": args.alias})}
    payload = run_governed(args.workspace, CHECK_DRIFT, arguments, terminal_principal(args.workspace))
    if payload is None:
        return 2
    print("\n".join(map(printable, report_lines(payload))))
    return 1 if payload["drifted"] else 0
