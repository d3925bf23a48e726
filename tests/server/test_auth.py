"""The hashed token store and the verifier the HTTP transports authenticate with."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from server.auth import TOKENS_FILE, TokenStore, TokenVerifier
from server.identity import role_from_scopes
from server.ledger import fingerprint
from tests.credentials import approver, issue
from tools.errors import IntegrityError, InvalidInput, NotFound, PolicyDenied

pytestmark = pytest.mark.anyio


def test_created_token_is_stored_only_as_its_sha256(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("ci-agent", "agent")
    text = (tmp_path / TOKENS_FILE).read_text()
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert [r.public()["name"] for r in store.records()] == ["ci-agent"]


def test_token_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    TokenStore(tmp_path).create("ci-agent", "agent")
    assert stat.S_IMODE((tmp_path / TOKENS_FILE).stat().st_mode) == 0o600


def test_each_token_is_fresh_and_long(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    first, second = store.create("a", "agent"), store.create("b", "agent")
    assert first != second and len(first) >= 40


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.create("a", "agent")
    store.revoke("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.head", "audit.jsonl", "audit.lock", "tokens.json", "tokens.lock"]


async def test_verifier_maps_a_token_to_its_name_and_role_scope(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = issue(tmp_path, "risk-officer", "human")
    access = await TokenVerifier(store).verify_token(token)
    assert access is not None and access.client_id == "risk-officer"
    assert access.scopes == ["role:human"] and role_from_scopes(access.scopes) == "human"
    assert access.token != token


@pytest.mark.parametrize("presented", ["", "wrong", "mlgate_" + "A" * 43])
async def test_verifier_refuses_unknown_tokens(tmp_path: Path, presented: str) -> None:
    store = TokenStore(tmp_path)
    store.create("ci-agent", "agent")
    assert await TokenVerifier(store).verify_token(presented) is None


async def test_revocation_by_another_process_takes_effect_at_the_next_verification(tmp_path: Path) -> None:
    serving = TokenStore(tmp_path)
    token = serving.create("ci-agent", "agent")
    verifier = TokenVerifier(serving)
    assert await verifier.verify_token(token) is not None
    TokenStore(tmp_path).revoke("ci-agent")
    assert await verifier.verify_token(token) is None


async def test_token_created_by_another_process_is_accepted_without_restart(tmp_path: Path) -> None:
    serving = TokenStore(tmp_path)
    serving.create("first", "agent")
    verifier = TokenVerifier(serving)
    assert await verifier.verify_token("nothing") is None
    token = TokenStore(tmp_path).create("second", "operator")
    access = await verifier.verify_token(token)
    assert access is not None and access.scopes == ["role:operator"]


@pytest.mark.parametrize("name", ["", "../etc", "a b", "-rf", "x" * 65, "name\n"])
def test_names_that_cannot_stand_in_the_audit_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        TokenStore(tmp_path).create(name, "agent")
    assert refused.value.rule_id == "token.name"
    assert not (tmp_path / TOKENS_FILE).exists()


def test_unknown_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as refused:
        TokenStore(tmp_path).create("x", "admin")
    assert "agent, human, operator" in refused.value.remediation


def test_a_name_in_use_is_refused_and_the_first_token_still_works(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("ci-agent", "agent")
    with pytest.raises(InvalidInput):
        store.create("ci-agent", "operator")
    assert store.match(token) is not None and len(store.records()) == 1


def test_revoking_an_unknown_name_is_not_found_and_changes_nothing(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.create("ci-agent", "agent")
    before = (tmp_path / TOKENS_FILE).read_bytes()
    with pytest.raises(NotFound):
        store.revoke("someone")
    assert (tmp_path / TOKENS_FILE).read_bytes() == before


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 1}', '{"version": 2, "tokens": []}', '{"version": 1, "tokens": [{"name": "x"}]}'])
async def test_a_damaged_store_verifies_nothing(tmp_path: Path, content: str) -> None:
    store = TokenStore(tmp_path)
    token = store.create("ci-agent", "agent")
    (tmp_path / TOKENS_FILE).write_text(content)
    assert await TokenVerifier(store).verify_token(token) is None
    with pytest.raises(IntegrityError):
        store.records()


def test_store_format_is_plain_json_with_name_role_hash_and_creation_time(tmp_path: Path) -> None:
    TokenStore(tmp_path).create("ci-agent", "agent")
    data = json.loads((tmp_path / TOKENS_FILE).read_text())
    assert data["version"] == 1
    assert sorted(data["tokens"][0]) == ["created", "name", "role", "sha256"]


# --- vouched by the audit chain -------------------------------------------------------------


def test_creation_and_revocation_are_audit_records_that_never_hold_the_token(tmp_path: Path) -> None:
    token = TokenStore(tmp_path).create("ci-agent", "agent")
    TokenStore(tmp_path).revoke("ci-agent")
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["token_created", "token_revoked"]
    stored = hashlib.sha256(token.encode()).hexdigest()
    assert records[0]["token"] == {"name": "ci-agent", "role": "agent", "id": stored[:12], "fingerprint": fingerprint(stored)}
    assert token not in (tmp_path / "audit.jsonl").read_text() and stored not in (tmp_path / "audit.jsonl").read_text()


def test_only_the_first_operator_token_is_issued_without_an_operator(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    with pytest.raises(PolicyDenied):
        store.create("alice", "human")
    issue(tmp_path, "root-op", "operator")
    for role in ("human", "operator"):
        with pytest.raises(PolicyDenied) as refused:
            store.create("mallory", role)
        assert refused.value.rule_id == "token.operator_required"
    with pytest.raises(PolicyDenied):
        store.create("mallory", "human", issuer=approver(tmp_path, "bob", "human"))
    assert [r.name for r in store.records()] == ["root-op", "bob"]


def test_a_human_token_is_revoked_only_by_an_operator(tmp_path: Path) -> None:
    token = issue(tmp_path, "alice", "human")
    store = TokenStore(tmp_path)
    with pytest.raises(PolicyDenied):
        store.revoke("alice")
    store.revoke("alice", issuer=approver(tmp_path, "root-op", "operator"))
    assert store.match(token) is None
