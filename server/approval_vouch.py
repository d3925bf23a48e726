"""Approvals as the audit chain vouches for them, and the report `mlgate audit verify` prints.

An approval file says what was asked; its status, requester and decider are taken from the chain
(server/ledger.py). A file the chain does not back reads as `unvouched`:

    no approval_requested record for its id, or one for a different change_hash, or a description
        (kind, target, diff, fields) other than the one requested: what the approver reads is what applies
    a decision for a different change_hash, or an unknown decision
    a decision made with a credential the chain did not vouch for at that moment (no token_created
        record for that token name, id and role before the decision, or revoked before it)

`vouch_problems(state_dir)` lists, for `mlgate audit verify`, every approval whose file disagrees
with the chain, every protected_in_force.json entry the chain did not record, and every tokens.json
entry without a live token_created record.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from server.ledger import APPROVER_ROLES, ApprovalEvents, ChainLedger
from tools.errors import PolicyDenied

UNVOUCHED = "unvouched"
_DECIDED = {"approve": "approved", "deny": "denied"}
_NOW = sys.maxsize


def is_approval_file(record: Any) -> bool:
    """Whether a loaded JSON value has the fields every approval file has."""
    return isinstance(record, dict) and all(isinstance(record.get(k), str) for k in ("id", "change_hash", "status")) and "created_at" in record


def described_sha256(record: dict[str, Any]) -> str:
    """SHA-256 of what an approver is shown (kind, target, diff, fields): an approval whose
    description was edited after its request no longer matches its chained request."""
    shown = {k: record.get(k) for k in ("kind", "target", "diff", "protected_fields")}
    return hashlib.sha256(json.dumps(shown, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def chain_status(record: dict[str, Any], events: ApprovalEvents, ledger: ChainLedger) -> tuple[str, str | None]:
    """(status, why unvouched or None) of the approval file `record` from its chain records."""
    requested, decided, change_hash = events.requested, events.decided, record["change_hash"]
    if requested is None:
        return UNVOUCHED, "the audit chain holds no request for it"
    if requested.get("change_hash") != change_hash:
        return UNVOUCHED, "its change_hash is not the one the audit chain recorded for its request"
    if requested.get("described_sha256") != described_sha256(record):
        return UNVOUCHED, "the change it describes was edited after it was requested"
    if decided is None:
        return "pending", None
    if decided.get("change_hash") != change_hash or decided.get("decision") not in _DECIDED:
        return UNVOUCHED, "the audit chain recorded its decision for another change"
    if not ledger.credential_valid_at(decided.get("credential"), decided.get("principal"), decided.get("role"), decided["seq"]):
        return UNVOUCHED, "it was decided with a credential the audit chain does not vouch for"
    status = _DECIDED[decided["decision"]]
    return ("consumed" if status == "approved" and events.consumed is not None else status), None


def vouched(record: dict[str, Any], ledger: ChainLedger) -> dict[str, Any]:
    """The approval with status, requester and decider from the chain; `vouch_problem` says how
    the file disagrees with the chain (absent when it agrees)."""
    events = ledger.approval(record["id"])
    status, problem = chain_status(record, events, ledger)
    view = {**record, "status": status}
    if status != UNVOUCHED:
        requested = events.requested or {}
        view["requested_by"] = {"name": requested.get("principal"), "role": requested.get("role")}
        if events.decided is not None:
            decided = events.decided
            view.update(decided_by=decided.get("principal"), decided_role=decided.get("role"), credential=decided.get("credential"), decided_at=decided.get("time"))
        if record["status"] != status:
            problem = f"its file says {record['status']} but the audit chain says {status}"
    if problem is not None:
        view["vouch_problem"] = problem
    return view


def check_approver(principal: Any, ledger: ChainLedger) -> None:
    """Raises PolicyDenied unless `principal` is a human/operator whose credential names a token
    the chain vouches for now."""
    if getattr(principal, "role", None) not in APPROVER_ROLES:
        raise PolicyDenied("agents cannot approve or deny approvals", "ask a human to decide", rule_id="role.agents_cannot_approve")
    if not ledger.credential_valid_at(getattr(principal, "credential", None), principal.name, principal.role, _NOW):
        raise PolicyDenied(
            f"{principal.name} holds no human or operator credential the audit chain vouches for",
            "decide with a token issued by an operator (`mlgate token create --role human`), from MLGATE_TOKEN or the prompt",
            rule_id="role.approver_authenticated",
        )


# --- the report of `mlgate audit verify` -----------------------------------------------------


def vouch_problems(state_dir: Path | str) -> list[str]:
    """One line per approval, in-force entry or token that the audit chain does not vouch for."""
    # Imported here: the stores import this module for `vouched`.
    from server.approvals import APPROVAL_ID, ApprovalStore
    from server.auth import TokenStore

    approvals = ApprovalStore(Path(state_dir))
    problems = _approval_problems(approvals, APPROVAL_ID)
    problems += _in_force_problems(approvals)
    problems += _token_problems(TokenStore(Path(state_dir)))
    return problems


def _approval_problems(store: Any, pattern: Any) -> list[str]:
    if not store.root.is_dir():
        return []
    problems = []
    for path in sorted(store.root.glob("apr-*.json")):
        record = store.stored(path.stem) if pattern.match(path.stem) else None
        if record is None:
            problems.append(f"approval file {path.name} is not an approval record")
            continue
        found = vouched(record, store.ledger).get("vouch_problem")
        if found:
            problems.append(f"approval {record['id']} ({record['status']}): {found}")
    return problems


def _in_force_problems(store: Any) -> list[str]:
    stored = store.stored_in_force() or {}
    chained = store.ledger.in_force() or {}
    return [
        f"protected_in_force.json: {path} = {value} has no vouching record in the audit chain"
        for path, value in sorted(stored.items())
        if chained.get(path) != value
    ]


def _token_problems(tokens: Any) -> list[str]:
    return [
        f"token {record.name!r} ({record.role}) in tokens.json has no live token_created record in the audit chain"
        for record in tokens.records()
        if not tokens.vouched(record)
    ]


def report_unvouched(state_dir: Path | str) -> bool:
    """Prints what the audit chain does not vouch for (for `mlgate audit verify`); True when nothing."""
    problems = vouch_problems(state_dir)
    for problem in problems:
        print(f"NOT VOUCHED: {problem}")
    if problems:
        print(f"governance state NOT VOUCHED: {len(problems)} approval, in-force or token entries have no matching audit record")
    return not problems
