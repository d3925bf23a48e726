"""Real approver credentials for tests: tokens issued through the TokenStore (chained in the audit
like `mlgate token create`), by the state directory's bootstrap operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import Principal
from server.auth import TokenStore
from server.credentials import TOKEN_ENV, principal_for

OPERATOR = "root-op"
_issued: dict[tuple[Path, str], str] = {}


def _operator(state_dir: Path) -> Principal:
    key = (state_dir.resolve(), OPERATOR)
    if key not in _issued:
        _issued[key] = TokenStore(state_dir).create(OPERATOR, "operator")
    principal = principal_for(TokenStore(state_dir), _issued[key])
    assert principal is not None
    return principal


def issue(state_dir: Path, name: str, role: str = "human") -> str:
    """A token for `name` with `role` (the same one on later calls), issued by the bootstrap operator."""
    if name == OPERATOR:
        _operator(state_dir)
        return _issued[(state_dir.resolve(), OPERATOR)]
    key = (state_dir.resolve(), name)
    if key not in _issued:
        issuer = _operator(state_dir) if role != "agent" else None
        _issued[key] = TokenStore(state_dir).create(name, role, issuer=issuer)
    return _issued[key]


def approver(state_dir: Path, name: str, role: str = "human") -> Principal:
    """The verified principal of a freshly issued human/operator token (carries its credential)."""
    principal = principal_for(TokenStore(state_dir), issue(state_dir, name, role))
    assert principal is not None
    return principal


def use_token(monkeypatch: pytest.MonkeyPatch, state_dir: Path, name: str, role: str = "human") -> str:
    """Puts `name`'s token in MLGATE_TOKEN, as an approver does in their own shell."""
    token = issue(state_dir, name, role)
    monkeypatch.setenv(TOKEN_ENV, token)
    return token
