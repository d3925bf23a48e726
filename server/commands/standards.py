"""`mlgate standards status|accept|set`: the acknowledgement pin of the standards and the governed
server config (server/acknowledgements.py), and the operator's guided standards change.

    status   what is in force vs what was last acknowledged, with the field-level diff (no credential)
    accept   a human or operator reviews the diff and acknowledges it (chained in the audit, pinned)
    set      an operator sets label, positive class(es), time column, PII and protected columns:
             one commit on the protected ref (standards + experiment.yaml), acknowledged at once

accept and set need a human/operator token (MLGATE_TOKEN in the person's own shell, or typed at a
hidden prompt; never an argument): the record names its credential.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from policies.provenance import branch_problem
from server.acknowledgement_check import describe_changes
from server.acknowledgements import AcknowledgementLedger, Observed, observe, pin_of, read_pin, record_acknowledgement, write_pin
from server.cli import add_workspace_option
from server.credentials import authenticate
from server.git import GitRepo
from server.settings import Settings, load_settings
from server.standards_set import StandardsChoice, commit_files, label_value, plan
from tools.errors import GitRefused, InvalidInput


def register(subparsers: Any) -> None:
    standards = subparsers.add_parser("standards", help="acknowledge the standards and server config in force; set the label and columns")
    commands = standards.add_subparsers(dest="standards_command", required=True, metavar="ACTION")
    status = commands.add_parser("status", help="what is in force vs what a human/operator last acknowledged (exit 1 when they differ)")
    add_workspace_option(status, governed=True)
    status.set_defaults(handler=status_command)
    accept = commands.add_parser("accept", help="show the diff and acknowledge the standards and server config in force (human/operator token)")
    add_workspace_option(accept, governed=True)
    accept.add_argument("--yes", action="store_true", help="do not ask for confirmation (the token is still required)")
    accept.set_defaults(handler=accept_command)
    _register_set(commands)


def _register_set(commands: Any) -> None:
    setter = commands.add_parser(
        "set",
        help="set the label, positive class(es), time column, PII and protected columns (one commit on main, acknowledged)",
        description="Writes configs/project_standards.yaml and the protected values of configs/experiment.yaml in one "
        "commit on the protected branch, then records your acknowledgement. Needs an operator or human token.",
    )
    add_workspace_option(setter, governed=True)
    setter.add_argument("--target", metavar="COL", help="the label column")
    setter.add_argument("--positive-class", nargs="+", default=[], metavar="V", help="value(s) of the label that count as positive (integers stay numbers)")
    setter.add_argument("--time-column", metavar="COL", help="column temporal_split orders rows by")
    setter.add_argument("--pii", nargs="+", metavar="COL", help="PII columns (replaces the list)")
    setter.add_argument("--protected", nargs="*", metavar="COL", help="protected attributes (replaces the list; `--protected` alone: the data holds none, so runs report no fairness slices)")
    setter.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    setter.set_defaults(handler=set_command)


# --- status and accept ------------------------------------------------------------------------


def _state(settings: Settings) -> tuple[GitRepo, Observed, dict[str, Any] | None, list[str]]:
    """(repo, what is in force, latest vouched acknowledgement, changes since it)."""
    repo = GitRepo(settings.workspace)
    try:
        observed = observe(repo, settings)
    except ValueError as exc:
        raise InvalidInput(str(exc), "fix the state dir's server.yaml, then run the command again", rule_id="standards.acknowledged") from exc
    latest = AcknowledgementLedger(settings.audit_path).latest()
    changes = describe_changes(repo, latest, observed) if latest is not None else ["no acknowledgement by a human or operator is recorded in the audit chain"]
    return repo, observed, latest, changes


def _matches(latest: dict[str, Any] | None, observed: Observed) -> bool:
    return latest is not None and (latest["standards_sha256"], latest["server_config_sha256"]) == (observed.standards_sha256, observed.server_config_sha256)


def _print_state(observed: Observed, latest: dict[str, Any] | None, changes: list[str]) -> None:
    if latest is not None:
        print(f"acknowledged: audit seq {latest['seq']} by {latest['principal']} ({latest['role']}, via {latest['via']})")
        print(f"  standards sha256 {latest['standards_sha256']}, server config sha256 {latest['server_config_sha256']}")
    print(f"in force:     standards on {observed.protected_ref} sha256 {observed.standards_sha256}, server config sha256 {observed.server_config_sha256}")
    for line in changes:
        print(f"  {line}")


def status_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    _, observed, latest, changes = _state(settings)
    _print_state(observed, latest, changes)
    if _matches(latest, observed) and read_pin(settings.state_dir) == pin_of(latest or {}):
        print("the standards and server config in force are acknowledged")
        return 0
    print(f"NOT acknowledged: every governed call is refused until a human or operator runs `mlgate standards accept --workspace {settings.workspace}`")
    return 1


def _confirmed(question: str, yes: bool) -> bool:
    if yes:
        return True
    if sys.stdin is None or not sys.stdin.isatty():
        print("mlgate: no terminal to confirm at; review the diff above and pass --yes", file=sys.stderr)
        return False
    # A plain line read, not input(): GNU readline can turn a Ctrl-C that lands mid-read into an end
    # of file, and Ctrl-C must always interrupt (exit 130) while Ctrl-D (an empty read) declines.
    print(f"{question} [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print(file=sys.stderr)
    if answer.strip().lower() not in ("y", "yes"):
        print("mlgate: not confirmed; nothing was written", file=sys.stderr)
        return False
    return True


def _refuse_agent_ref(ref: str) -> None:
    if branch_problem(ref) is None:
        raise GitRefused(f"protected_ref {ref!r} is a branch agents may push; it cannot be acknowledged", "set protected_ref back to main in the state dir's server.yaml", rule_id="standards.acknowledged")


def accept_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    repo, observed, latest, changes = _state(settings)
    if _matches(latest, observed):
        if read_pin(settings.state_dir) != pin_of(latest or {}):
            write_pin(settings.state_dir, latest or {})
            print(f"nothing new to acknowledge; the pin file was restored from audit seq {(latest or {})['seq']}")
        else:
            print("nothing to accept: the standards and server config in force are the acknowledged ones")
        return 0
    _refuse_agent_ref(observed.protected_ref)
    _print_state(observed, latest, changes)
    principal = authenticate(settings.state_dir)
    if not _confirmed("Acknowledge these standards and server config?", args.yes):
        return 1
    record = record_acknowledgement(settings, observed, principal, via="accept", commit=repo.branch_head(observed.protected_ref))
    print(f"acknowledged by {principal.name} ({principal.role}, credential {principal.credential}): audit seq {record['seq']}")
    return 0


# --- set --------------------------------------------------------------------------------------


def _choice(args: argparse.Namespace) -> StandardsChoice:
    return StandardsChoice(
        target=args.target,
        positive_class=tuple(label_value(v) for v in args.positive_class),
        time_column=args.time_column,
        pii=tuple(args.pii) if args.pii is not None else None,
        protected=tuple(args.protected) if args.protected is not None else None,
    )


def set_command(args: argparse.Namespace) -> int:
    settings = load_settings(args.workspace)
    _, observed, latest, changes = _state(settings)
    if not _matches(latest, observed):
        _print_state(observed, latest, changes)
        raise GitRefused(
            "the standards or server config in force are not acknowledged yet, and set would acknowledge them too",
            f"review the changes above with `mlgate standards accept --workspace {settings.workspace}` first; nothing was written",
            rule_id="standards.acknowledged",
        )
    proposal = plan(settings, _choice(args))
    if not proposal.changes:
        print("nothing to change: the standards already say this")
        return 0
    print(f"changes on {settings.protected_ref} (one commit):")
    for line in proposal.changes:
        print(f"  {line}")
    principal = authenticate(settings.state_dir)
    if not _confirmed("Commit and acknowledge these standards?", args.yes):
        return 1
    message = f"mlgate standards set by {principal.name} ({principal.role})\n\n" + "\n".join(proposal.changes)
    commit = commit_files(GitRepo(settings.workspace), settings.protected_ref, proposal.files, message)
    _, observed, _, _ = _state(settings)
    record = record_acknowledgement(settings, observed, principal, via="set", commit=commit)
    print(f"committed {commit[:12]} on {settings.protected_ref}; acknowledged by {principal.name} ({principal.role}): audit seq {record['seq']}")
    return 0
