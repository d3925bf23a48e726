"""The approver's credential at the terminal: MLGATE_TOKEN, or a hidden prompt on a real terminal."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from server.credentials import PROMPT, TOKEN_ENV, authenticate
from server.settings import Settings
from tests.credentials import issue
from tools.errors import PolicyDenied

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_token_in_the_environment_names_the_principal_and_its_credential(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    token = issue(settings.state_dir, "alice")
    monkeypatch.setenv(TOKEN_ENV, token)
    principal = authenticate(settings.state_dir)
    assert principal is not None and (principal.name, principal.role) == ("alice", "human")
    assert principal.credential is not None and principal.credential.startswith("alice:") and token not in principal.credential


def test_a_token_of_another_role_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, issue(settings.state_dir, "alice"))
    with pytest.raises(PolicyDenied) as refused:
        authenticate(settings.state_dir, ("operator",))
    assert refused.value.rule_id == "credential.role"


def test_no_token_and_no_terminal_is_refused_unless_optional(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(PolicyDenied) as refused:
        authenticate(settings.state_dir)
    assert refused.value.rule_id == "credential.missing" and "never accepted as arguments" in refused.value.remediation
    assert authenticate(settings.state_dir, required=False) is None


def _read_until(fd: int, wanted: bytes, limit_s: float = 120.0) -> bytes:
    seen = b""
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], limit_s)
        assert ready, f"no {wanted!r} from the terminal; got {seen!r}"
        seen += os.read(fd, 4096)
    return seen


def test_at_a_terminal_the_token_is_typed_at_a_hidden_prompt(settings: Settings) -> None:
    """`mlgate approvals approve` on a real pseudo-terminal (its controlling tty), no MLGATE_TOKEN:
    it prompts, the token typed is not echoed, and the decision is made as the token's principal."""
    token = issue(settings.state_dir, "alice")
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    master, slave = os.openpty()
    command = [sys.executable, "-m", "server.cli", "approvals", "approve", "apr-0123456789ab", "--workspace", str(settings.workspace)]
    process = subprocess.Popen(
        command, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT,
        start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    try:
        _read_until(master, PROMPT.strip().encode())
        os.write(master, token.encode() + b"\n")
        echoed = _read_until(master, b"\n")
        _, err = process.communicate(timeout=120)
    finally:
        os.close(master)
    # Authenticated as alice: the refusal is the approval's (unknown), not the credential's.
    assert process.returncode == 2 and b"no approval has this id" in err and b"credential" not in err
    assert token.encode() not in echoed
