"""The credential of a human or operator at the terminal: a token an operator issued, read from the
approver's own environment (`MLGATE_TOKEN`) or typed at a hidden prompt, never from the command line
(arguments show in `ps`, shell history and an agent's transcript).

The token is checked against the state directory's TokenStore, which accepts only tokens whose
creation the audit chain recorded. The principal's name and role come from the token; the
credential it carries (`<token name>:<id>`) is what audit records name, never the token.

The environment is read here rather than in server/settings.py: a credential is not configuration
and must never travel in Settings (which tools and resources can see through their ports).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from policies import Principal
from server.auth import TokenStore
from server.ledger import APPROVER_ROLES, credential_of
from tools.errors import GovernanceError, PolicyDenied

TOKEN_ENV = "MLGATE_TOKEN"
PROMPT = "mlgate token (human or operator; input hidden): "


def read_token(prompt: bool = True) -> str | None:
    """The token from MLGATE_TOKEN, else (with `prompt`) from a hidden prompt when stdin is a
    terminal, else None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    if prompt and sys.stdin is not None and sys.stdin.isatty():
        try:
            return getpass.getpass(PROMPT).strip() or None
        except (EOFError, KeyboardInterrupt):
            return None
    return None


def principal_for(store: TokenStore, token: str) -> Principal | None:
    """The principal a token stands for, with its credential; None for a token the store (and the
    audit chain) does not vouch for."""
    record = store.match(token)
    if record is None:
        return None
    return Principal(record.name, record.role, credential_of(record.name, record.sha256))  # type: ignore[arg-type]


def authenticate(state_dir: Path, roles: tuple[str, ...] = APPROVER_ROLES, *, required: bool = True) -> Principal | None:
    """The verified principal of the terminal's token. With `required=False`, only MLGATE_TOKEN is
    read (no prompt) and None is returned when it is unset. Raises PolicyDenied for a missing (when
    required), unknown or revoked token, or one whose role is not in `roles`."""
    token = read_token(prompt=required)
    if token is None:
        if not required:
            return None
        raise PolicyDenied(
            f"this command needs a credential of role {' or '.join(roles)} and none was given",
            f"set {TOKEN_ENV} in your own shell to the token an operator issued you (`mlgate token create --name NAME --role ROLE`), "
            "or run the command at a terminal to be prompted; tokens are never accepted as arguments",
            rule_id="credential.missing",
        )
    principal = principal_for(TokenStore(state_dir), token)
    if principal is None:
        raise PolicyDenied("the token given is not a valid mlgate token of this workspace", "ask an operator for a token (`mlgate token create`)", rule_id="credential.unknown")
    if principal.role not in roles:
        raise PolicyDenied(f"token {principal.name!r} has role {principal.role}; this needs {' or '.join(roles)}", "use a token issued for that role", rule_id="credential.role")
    return principal


def exposed_approver_token(state_dir: Path) -> Principal | None:
    """The human/operator principal whose valid token sits in this process's MLGATE_TOKEN (None if
    none). A stdio server is started from the agent's environment: a token there is the agent's too."""
    principal = _environment_token(state_dir)[1]
    return principal if principal is not None and principal.role in APPROVER_ROLES else None


def _environment_token(state_dir: Path) -> tuple[str, Principal | None]:
    """MLGATE_TOKEN of this process ("" when unset) and the principal the store vouches it for."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token, principal_for(TokenStore(state_dir), token) if token else None


class TokenHolder:
    """The principal of a stdio server a human or operator started with their own token: the
    token is checked again at every call (a revoked token acts for no human from its next call,
    as over HTTP), and the name and role always come from the token, never from the
    environment's MLGATE_PRINCIPAL. The token stays in this object, never in Settings."""

    def __init__(self, state_dir: Path, token: str, fallback: Principal) -> None:
        self._store = TokenStore(state_dir)
        self._token = token
        self._fallback = fallback

    def __call__(self) -> Principal:
        """The token's principal now; `fallback` (the weakest role) once the store no longer
        vouches for it or cannot be read."""
        try:
            principal = principal_for(self._store, self._token)
        except GovernanceError:
            principal = None
        return principal if principal is not None and principal.role in APPROVER_ROLES else self._fallback


def stdio_holder(state_dir: Path, role: str, named: str | None, fallback: Principal) -> TokenHolder:
    """The holder for a stdio server started as `role` (human or operator). Raises PolicyDenied
    without a valid MLGATE_TOKEN of that role, or when MLGATE_PRINCIPAL (`named`) names someone
    else: a role nobody authenticated would read sealed figures and pass as a second human."""
    token, principal = _environment_token(state_dir)
    if principal is None:
        raise PolicyDenied(
            f"a stdio server started as {role} needs that {role}'s own token in MLGATE_TOKEN, and {'the one given is not valid' if token else 'none is set'}",
            "start it from your own shell with the token an operator issued you (`mlgate token create --role human`), "
            "or serve over HTTP and connect with that token; agents leave MLGATE_ROLE unset",
            rule_id="credential.stdio_role",
        )
    if principal.role != role:
        raise PolicyDenied(f"token {principal.name!r} has role {principal.role}, not {role}", f"set MLGATE_ROLE={principal.role}, or use a {role} token", rule_id="credential.stdio_role")
    if named is not None and named != principal.name:
        raise PolicyDenied(f"MLGATE_PRINCIPAL names {named!r} but the token belongs to {principal.name!r}", "unset MLGATE_PRINCIPAL: the name comes from the token", rule_id="credential.stdio_role")
    return TokenHolder(state_dir, token, fallback)
