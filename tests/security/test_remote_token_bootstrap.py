"""The bootstrap operator token is issued once per state directory.

Without a live operator token, `mlgate token create --role operator` needs no credential. If that
held whenever no operator token is live, an operator revoking their own (last) token would let any
process of the server's OS user mint an operator token, then human tokens that approve changes
and promotions over HTTP. Real token store, real audit chain, real CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.auth import TokenStore
from server.cli import main
from server.credentials import TOKEN_ENV
from server.ledger import ChainWriter, token_body
from server.settings import load_settings
from tests.credentials import approver
from tools.errors import PolicyDenied


def _create(workspace: Path, name: str, role: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["token", "create", "--name", name, "--role", role, "--workspace", str(workspace)]) == 0
    return capsys.readouterr().out.strip()


def test_an_operator_cannot_revoke_the_last_operator_token_and_nobody_bootstraps_another(workspace: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    operator = _create(workspace, "root-op", "operator", capsys)
    monkeypatch.setenv(TOKEN_ENV, operator)
    assert main(["token", "revoke", "root-op", "--workspace", str(workspace)]) == 2
    assert "last operator token" in capsys.readouterr().err
    store = TokenStore(load_settings(workspace).state_dir)
    assert store.match(operator) is not None
    monkeypatch.delenv(TOKEN_ENV)
    assert main(["token", "create", "--name", "mallory", "--role", "operator", "--workspace", str(workspace)]) == 2
    assert [r.name for r in store.records()] == ["root-op"]


def test_an_operator_token_is_revoked_once_another_operator_token_is_live(tmp_path: Path) -> None:
    first = approver(tmp_path, "root-op", "operator")
    store = TokenStore(tmp_path)
    store.create("second-op", "operator", issuer=first)
    store.revoke("root-op", issuer=first)
    assert [r.name for r in store.records()] == ["second-op"]


def test_a_chain_whose_operator_tokens_were_all_revoked_bootstraps_no_new_operator(tmp_path: Path) -> None:
    approver(tmp_path, "root-op", "operator")
    store = TokenStore(tmp_path)
    record = store.records()[0]
    # A revocation chained as servers before the last-operator check wrote it.
    ChainWriter(tmp_path / "audit.jsonl").append({"kind": "token_revoked", "token": token_body("root-op", None, record.sha256), "principal": "root-op", "role": "operator"})
    assert not store.ledger.live_tokens(("operator",))
    for role in ("operator", "human"):
        with pytest.raises(PolicyDenied) as refused:
            store.create("mallory", role)
        assert refused.value.rule_id == "token.operator_required"
