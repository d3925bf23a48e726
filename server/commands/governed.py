"""Running a governed tool from the terminal for a human or operator (`approvals approve`,
`rollback`): the same spec through the same enforcement point as an MCP call, with transport
`cli`, so the same rules decide and the audit chain records decision and outcome.

Who calls is never declared on the command line: the principal is the one of the operator-issued
token given in MLGATE_TOKEN or at the prompt (server/credentials.py), and records name its credential."""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

import anyio

from policies import Principal
from resources.base import ReadContext, ResourceSpec
from server.credentials import authenticate
from server.enforcement import Enforcer
from server.ports import build_ports
from server.read_ports import read_ports
from server.results import ProtocolRefusal
from server.settings import load_settings, policy_limits
from tools.base import CallContext, ToolSpec

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def principal_name(text: str) -> str:
    if not NAME.fullmatch(text):
        raise argparse.ArgumentTypeError("names are 1-64 letters, digits, '.', '_', '@' or '-'")
    return text


def os_user() -> str:
    """The OS user, for records of commands that need no credential (never a decider's identity)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = f"uid-{os.getuid()}"
    return name if NAME.fullmatch(name) else f"uid-{os.getuid()}"


CREDENTIAL_HELP = (
    "Needs a human or operator token issued by an operator: set MLGATE_TOKEN in your own shell, or run at a "
    "terminal to be prompted. Your name and role come from the token."
)


def add_principal_options(parser: argparse.ArgumentParser, who: str) -> None:
    """No options: who {who} is the verified token's principal, never a flag."""
    parser.epilog = f"Who {who}: {CREDENTIAL_HELP}"


def principal_of(args: argparse.Namespace) -> Principal:
    """The human or operator the terminal's token stands for (server/credentials.py).
    Raises PolicyDenied without a valid human/operator token."""
    return authenticate(load_settings(args.workspace).state_dir)


# The tools' remediations speak to agents (their input schema, their list_runs tool); at the
# terminal the same refusal names what a person can do there.
TERMINAL_REMEDIATION = {
    "input.schema": "fix the listed values; `mlgate COMMAND --help` shows each argument and its form",
    "tracking.run_not_found": "run ids are 32 lowercase hex characters: find them in the MLflow UI (`mlgate ui`) or in the audit chain (`mlgate audit search --tool run_experiment`)",
    "drift.no_alias": "promote a run first (`mlgate promote RUN --alias ALIAS`), or name the baseline run with --run RUN_ID",
}


def for_terminal(payload: dict[str, Any]) -> dict[str, Any]:
    """A refusal's payload with the remediation a person at the terminal can follow."""
    remediation = TERMINAL_REMEDIATION.get(str(payload.get("rule_id")))
    return {**payload, "remediation": remediation} if remediation else payload


def run_governed(workspace: str, spec: ToolSpec, arguments: dict[str, Any], principal: Principal) -> dict[str, Any] | None:
    """The tool's payload, or None after printing the refusal (reason and what to do) to stderr."""
    ports = build_ports(load_settings(workspace, transport="cli"))
    enforcer = Enforcer(ports.audit, ports.standards.policy_config)
    try:
        result = anyio.run(enforcer.call, spec, arguments, CallContext(principal=principal, transport="cli", ports=ports))
    finally:
        ports.audit.close()
    payload = result.structured_content or {}
    if result.is_error:
        payload = for_terminal(payload)
        print(f"mlgate: {payload.get('reason')}", file=sys.stderr)
        print(f"  what to do: {payload.get('remediation')}", file=sys.stderr)
        return None
    return payload


def read_governed(workspace: str, spec: ResourceSpec, params: dict[str, Any], principal: Principal, terminal: Mapping[str, str] | None = None) -> str | None:
    """The resource's text as an MCP read of `spec.uri` would serve it to `principal` (same rule,
    same `read` audit record, transport `cli`), or None after printing the refusal to stderr, with
    each resource URI in `terminal` replaced by the command that shows the same at the terminal."""
    ports = build_ports(load_settings(workspace, transport="cli"))
    enforcer = Enforcer(ports.audit, ports.standards.policy_config, {"policy": policy_limits()})
    produce = functools.partial(spec.read, ReadContext(principal, "cli", read_ports(ports)), params)
    try:
        return anyio.run(enforcer.read, {"resource": spec.uri}, spec.name, params, produce, principal, "cli")
    except ProtocolRefusal as refused:
        text = refused.text
        for uri, command in (terminal or {}).items():
            text = text.replace(uri, command)
        print(f"mlgate: {text}", file=sys.stderr)
        return None
    finally:
        ports.audit.close()
