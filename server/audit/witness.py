"""Witnesses of the audit chain's head, kept where the chain is not.

A rewrite of the chain (records dropped, re-linked, re-hashed, the anchor rewritten) is consistent
in itself; what gives it away is a copy of an old head kept elsewhere. At each event the server
records the head it had then, `"<seq>:<hash>"`:

    MLflow runs        tags mlgate.audit_witness (run created) and mlgate.audit_witness_end (ended)
    PR records         `audit_witness` of the record and of each history entry (<state_dir>/prs/)
    alias history      `audit_witness` of each promote/rollback event (<state_dir>/registry/)

`mlgate audit verify` collects every witness it can reach and checks it against the chain: the
chain must still hold that seq, with that hash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.audit.records import MAX_RECORD_BYTES, Head, loads
from server.mlflow_import import mlflow_module
from tools.redact import redact_value

WITNESS_FIELD = "audit_witness"
RUN_TAGS = ("mlgate.audit_witness", "mlgate.audit_witness_end")
# Which chain a run's witnesses belong to (the hash of that chain's first record): a tracking server
# shared by several workspaces holds runs witnessed by other chains, which are not this chain's to check.
CHAIN_TAG = "mlgate.audit_chain"
_WITNESS = re.compile(r"^(-1|0|[1-9][0-9]{0,15}):([0-9a-f]{64})\Z")


@dataclass(frozen=True)
class Witness:
    source: str  # "mlflow", "pr", "registry"
    where: str  # which run, PR or alias event holds it
    text: str  # as stored: "<seq>:<hash>"

    def parsed(self) -> tuple[int, str] | None:
        found = _WITNESS.match(self.text) if isinstance(self.text, str) else None
        return (int(found.group(1)), found.group(2)) if found else None


def format_witness(head: Head) -> str:
    return f"{head.seq}:{head.hash}"


def chain_witness(chain: Any) -> Callable[[], str]:
    """A callable giving the chain's current head as a witness string (for adapters to record)."""
    return lambda: format_witness(chain.head)


def late_witness(ports: Any) -> Callable[[], str]:
    """Like `chain_witness` for `ports.audit`, looked up at each call (adapters are built first)."""
    return lambda: format_witness(ports.audit.head)


# --- collecting -------------------------------------------------------------------------------------


def pr_witnesses(prs_dir: Path) -> Iterator[Witness]:
    """Witnesses in PR records (the record's and each history entry's)."""
    if not prs_dir.is_dir():
        return
    for path in sorted(prs_dir.glob("*.json")):
        record = _json(path)
        if not isinstance(record, dict):
            continue
        entries = [record, *[h for h in record.get("history") or [] if isinstance(h, dict)]]
        for n, entry in enumerate(entries):
            if WITNESS_FIELD in entry:
                yield Witness("pr", f"{path.name}" + (f" history[{n - 1}]" if n else ""), entry[WITNESS_FIELD])


def registry_witnesses(history_file: Path) -> Iterator[Witness]:
    """Witnesses in the alias history ({model: {alias: [event, ...]}})."""
    history = _json(history_file)
    if not isinstance(history, dict):
        return
    for model, aliases in sorted(history.items()):
        for alias, events in sorted((aliases or {}).items()) if isinstance(aliases, dict) else []:
            for n, event in enumerate(events if isinstance(events, list) else []):
                if isinstance(event, dict) and WITNESS_FIELD in event:
                    yield Witness("registry", f"{model}@{alias} event {n}", event[WITNESS_FIELD])


def chain_id(audit_path: Path) -> str | None:
    """The id of a chain: the hash of its first record (None for an empty or unreadable chain)."""
    try:
        with Path(audit_path).open("rb") as chain:
            first = loads(chain.readline(MAX_RECORD_BYTES + 1))
    except (OSError, ValueError):
        return None
    return first.get("hash") if isinstance(first, dict) and first.get("seq") == 0 and isinstance(first.get("hash"), str) else None


def run_witnesses(runs: Iterator[Mapping[str, Any]], chain: str | None = None) -> Iterator[Witness]:
    """Witnesses in MLflow runs given as {run_id, tags}; with `chain`, runs tagged as witnessed by
    another chain are skipped (runs without the tag are checked)."""
    for run in runs:
        if chain is not None and run["tags"].get(CHAIN_TAG, chain) != chain:
            continue
        for tag in RUN_TAGS:
            if tag in run["tags"]:
                yield Witness("mlflow", f"run {run['run_id']} {tag}", run["tags"][tag])


def mlflow_runs(client: Any) -> Iterator[dict[str, Any]]:
    """Every run of every experiment (deleted ones too) as {run_id, tags, status, metrics, params}, page by page."""
    ViewType = mlflow_module("mlflow.entities").ViewType  # first use under the import lock

    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL, max_results=1000)]
    for start in range(0, len(experiments), 100):
        ids, token = experiments[start : start + 100], None
        while True:
            page = client.search_runs(ids, run_view_type=ViewType.ALL, max_results=1000, page_token=token)
            yield from map(_run_view, page)
            token = page.token
            if not token:
                break


def _run_view(run: Any) -> dict[str, Any]:
    data = run.data  # params as the tracking port's get_run shows them, so the run_metrics check agrees
    return {"run_id": run.info.run_id, "tags": dict(data.tags), "status": run.info.status, "metrics": dict(data.metrics), "params": redact_value(dict(data.params))}


def _json(path: Path) -> Any:
    try:
        return loads(path.read_bytes())
    except (OSError, ValueError):
        return None
