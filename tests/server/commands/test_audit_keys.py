"""`mlgate audit keygen [--rotate]` needs an operator token, like every operator command: refused
without one, with an unknown token or one of another role (nothing written), allowed and chained
with the operator's name and credential when one is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.audit import verify
from server.cli import main
from server.credentials import TOKEN_ENV
from server.settings import Settings
from tests.credentials import issue, use_token


@pytest.fixture
def key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's key location, outside the state directory; no token in the environment yet."""
    path = tmp_path / "operator-home" / "keys" / "ws.ed25519"
    monkeypatch.setenv("MLGATE_AUDIT_SIGNING_KEY", str(path))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    return path


def keygen(settings: Settings, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["audit", "keygen", "--workspace", str(settings.workspace), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def key_records(settings: Settings) -> list[dict]:
    if not settings.audit_path.exists():
        return []
    return [r for r in map(json.loads, settings.audit_path.read_bytes().splitlines()) if r.get("kind") == "audit_key"]


def state(settings: Settings, key_path: Path) -> dict[str, bytes | None]:
    """Every file a keygen writes, as bytes (None when missing)."""
    paths = [key_path, key_path.with_name(key_path.name + ".pub"), settings.audit_path, settings.audit_path.with_name("audit.head"), settings.audit_path.with_name("audit.signer")]
    return {str(p): p.read_bytes() if p.exists() else None for p in paths}


def test_keygen_without_a_token_is_refused_and_writes_nothing(settings: Settings, key_path: Path, capsys) -> None:
    issue(settings.state_dir, "root-op", "operator")  # an operator token exists; none is presented
    before = state(settings, key_path)
    code, out, err = keygen(settings, capsys)
    assert code == 2 and out == "" and "role operator" in err and TOKEN_ENV in err
    assert state(settings, key_path) == before and not key_path.exists() and key_records(settings) == []


def test_keygen_before_any_operator_token_exists_says_to_create_one_first(settings: Settings, key_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv(TOKEN_ENV, "mlg_not-a-token")
    code, out, err = keygen(settings, capsys)
    assert code == 2 and out == "" and "has none yet" in err and "mlgate token create" in err and "--role operator" in err
    assert not key_path.exists() and key_records(settings) == []


@pytest.mark.parametrize(("name", "role", "says"), [("codex", "agent", "role agent"), ("ann", "human", "role human"), (None, None, "not a valid mlgate token")])
def test_keygen_with_a_token_that_is_not_an_operators_is_refused(settings: Settings, key_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, name: str | None, role: str | None, says: str) -> None:
    issue(settings.state_dir, "root-op", "operator")
    monkeypatch.setenv(TOKEN_ENV, issue(settings.state_dir, name, role) if name else "mlg_forged-token-value")
    before = state(settings, key_path)
    code, out, err = keygen(settings, capsys)
    assert code == 2 and out == "" and says in err
    assert state(settings, key_path) == before and not key_path.exists()


def test_keygen_with_an_operator_token_creates_the_key_and_chains_who_did_it(settings: Settings, key_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_token(monkeypatch, settings.state_dir, "key-ops", "operator")
    code, out, err = keygen(settings, capsys)
    assert code == 0 and key_path.exists() and "by key-ops (credential key-ops:" in err
    (record,) = key_records(settings)
    assert record["public_key"] == out.strip() and record["action"] == "audit.keygen"
    assert (record["principal"], record["role"]) == ("key-ops", "operator") and record["credential"].startswith("key-ops:")
    assert TOKEN_ENV not in settings.audit_path.read_text() and issue(settings.state_dir, "key-ops", "operator") not in settings.audit_path.read_text()


@pytest.mark.parametrize("token", [None, "agent", "forged"])
def test_a_refused_rotation_leaves_the_old_key_and_the_chain_untouched(settings: Settings, key_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, token: str | None) -> None:
    use_token(monkeypatch, settings.state_dir, "key-ops", "operator")
    assert keygen(settings, capsys)[0] == 0
    presented = {None: None, "agent": issue(settings.state_dir, "codex", "agent"), "forged": "mlg_forged-token-value"}[token]
    before = state(settings, key_path)
    if presented is None:
        monkeypatch.delenv(TOKEN_ENV)
    else:
        monkeypatch.setenv(TOKEN_ENV, presented)
    code, out, _ = keygen(settings, capsys, "--rotate")
    assert code == 2 and out == ""
    assert state(settings, key_path) == before and len(key_records(settings)) == 1 and verify(settings.audit_path).ok


def test_a_rotation_with_an_operator_token_is_signed_by_the_old_key_and_names_the_operator(settings: Settings, key_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_token(monkeypatch, settings.state_dir, "key-ops", "operator")
    _, first, _ = keygen(settings, capsys)
    use_token(monkeypatch, settings.state_dir, "rota", "operator")
    code, second, _ = keygen(settings, capsys, "--rotate")
    assert code == 0 and second != first
    old, new = key_records(settings)
    assert new["previous_key_id"] == old["key_id"] and new["principal"] == "rota" and new["credential"].startswith("rota:")
    assert main(["audit", "verify", "--workspace", str(settings.workspace)]) == 0, capsys.readouterr().out
