"""Rewriting the audit chain whole is detected (issue 8 item 6).

The attacker of these tests edits the state directory as the agent's own shell could: drops a
record, re-links and re-hashes every record after it, and rewrites the anchor, so the chain is
consistent in itself (`verify` of the chain alone passes). `mlgate audit verify` must still fail:
through the witnesses the server left in MLflow runs, PR records and the alias history, and, when a
signing key is configured, through the signed heads and the pinned public key.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.audit import AuditChain, verify
from server.audit.signing import key_id, key_record, load_key, public_hex, sign_head
from server.audit.records import Head, canonical, record_hash
from server.cli import main
from server.credentials import TOKEN_ENV
from server.ports import build_ports
from server.settings import Settings, load_settings
from server.workspace import init_workspace
from tests.credentials import issue

RUN_TAGS = {"principal": "codex", "client_name": "demo-bank", "project_name": "credit-default"}


# --- the attacker's tools -----------------------------------------------------------------------


def records(settings: Settings) -> list[dict]:
    return [json.loads(line) for line in settings.audit_path.read_bytes().splitlines()]


def rewrite_chain(settings: Settings, kept: list[dict], signer: Ed25519PrivateKey | None = None) -> None:
    """Writes `kept` as a fresh, consistent chain (seq, prev, hash recomputed) and its anchor."""
    lines, prev = [], "0" * 64
    for seq, record in enumerate(kept):
        record = {**record, "seq": seq, "prev": prev}
        record["hash"] = prev = record_hash(record)
        lines.append(canonical(record) + b"\n")
    settings.audit_path.write_bytes(b"".join(lines))
    head = Head(len(kept) - 1, prev, sum(map(len, lines)))
    anchor = {"seq": head.seq, "hash": head.hash, "offset": head.offset}
    checkpoints = settings.audit_path.with_name("audit.checkpoints")
    if signer is not None:
        anchor["signed"] = sign_head(signer, head, "2030-01-01T00:00:00Z")
        checkpoints.write_bytes(canonical(anchor["signed"]) + b"\n")
    elif checkpoints.exists():
        checkpoints.unlink()
    settings.audit_path.with_name("audit.head").write_bytes(canonical(anchor) + b"\n")


def drop_record(settings: Settings, seq: int, signer: Ed25519PrivateKey | None = None) -> None:
    rewrite_chain(settings, [r for r in records(settings) if r["seq"] != seq], signer)


def audit_verify(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "verify", "--workspace", str(settings.workspace)])
    return code, capsys.readouterr().out


# --- a workspace with history -------------------------------------------------------------------


@pytest.fixture
def key_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's key location, outside the state directory."""
    path = tmp_path / "operator-home" / ".config" / "mlgate" / "keys" / "ws.ed25519"
    monkeypatch.setenv("MLGATE_AUDIT_SIGNING_KEY", str(path))
    return path


def make_history(settings: Settings) -> dict[str, str]:
    """Decisions, a run (witnessed at start and end), a PR and an alias move, as the server records them."""
    ports = build_ports(settings)
    for n in range(4):
        ports.audit.append({"kind": "decision", "tool": "load_dataset", "n": n})
    experiment = ports.tracking.get_or_create_experiment("demo-bank/credit-default")
    run_id = ports.tracking.start_run(experiment, RUN_TAGS)
    for n in range(4):
        ports.audit.append({"kind": "outcome", "tool": "run_experiment", "n": n})
    ports.tracking.end_run(run_id, "FINISHED")
    ports.prs.records.save({"provider": "local", "number": 1, "branch": "exp/a", "state": "open", "run_id": run_id, "history": [{"run_id": run_id}]})
    ports.audit.append({"kind": "decision", "tool": "promote"})
    ports.registry._append("credit-default", "candidate", {"action": "promote", "version": "1"})
    ports.audit.append({"kind": "outcome", "tool": "promote"})
    ports.audit.close()
    return {"run_id": run_id}


@pytest.fixture(scope="module")
def history_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    workspace = init_workspace(tmp_path_factory.mktemp("history") / "ws")
    return workspace, make_history(load_settings(workspace, transport="memory"))


@pytest.fixture
def history(history_template: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """A copy of a workspace with history (the MLflow store is costly to create once per test)."""
    workspace = tmp_path / "ws"
    shutil.copytree(history_template[0], workspace, symlinks=True)
    return load_settings(workspace, transport="memory"), history_template[1]


# --- witnesses ----------------------------------------------------------------------------------


def test_untouched_chain_with_witnesses_verifies(history: tuple[Settings, dict], capsys) -> None:
    settings, _ = history
    code, out = audit_verify(settings, capsys)
    assert code == 0, out
    assert "audit witnesses: 5 checked (mlflow 2, pr 2, registry 1)" in out


def test_rewritten_chain_with_rewritten_anchor_is_caught_by_the_run_witness(history: tuple[Settings, dict], capsys) -> None:
    settings, ids = history
    drop_record(settings, 1)
    assert verify(settings.audit_path).ok  # the rewrite is consistent in itself
    code, out = audit_verify(settings, capsys)
    assert code == 1
    assert "WITNESS MISMATCH" in out and f"run {ids['run_id']} mlgate.audit_witness " in out
    assert "pr local-1.json" in out and "registry credit-default@candidate" in out


def test_chain_cut_back_before_a_witness_is_reported_as_missing_records(history: tuple[Settings, dict], capsys) -> None:
    settings, _ = history
    rewrite_chain(settings, records(settings)[:3])
    assert verify(settings.audit_path).ok
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "WITNESS MISSING" in out and "records were removed" in out


def test_a_tampered_witness_is_reported_not_trusted(history: tuple[Settings, dict], capsys) -> None:
    settings, _ = history
    path = settings.state_dir / "prs" / "local-1.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "audit_witness": "not-a-witness"}))
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "WITNESS UNREADABLE" in out


# --- signed heads -------------------------------------------------------------------------------


def keygen(settings: Settings, *extra: str) -> int:
    """`mlgate audit keygen` as the operator runs it: their token in MLGATE_TOKEN."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, issue(settings.state_dir, "key-ops", "operator"))
        return main(["audit", "keygen", "--workspace", str(settings.workspace), *extra])


def test_keygen_writes_a_private_key_only_its_owner_reads_outside_the_state_dir(settings: Settings, key_path: Path) -> None:
    assert keygen(settings) == 0
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600 and not key_path.is_relative_to(settings.state_dir)
    announced = [r for r in records(settings) if r.get("kind") == "audit_key"]
    assert [r["public_key"] for r in announced] == [key_path.with_name("ws.ed25519.pub").read_text().strip()]
    assert keygen(settings) == 2  # never overwritten without --rotate


def test_untouched_signed_chain_with_witnesses_and_a_rotation_verifies(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    assert keygen(settings) == 0
    make_history(settings)
    assert keygen(settings, "--rotate") == 0
    make_history(settings)
    code, out = audit_verify(settings, capsys)
    assert code == 0, out
    anchor = json.loads(settings.audit_path.with_name("audit.head").read_text())
    assert anchor["signed"]["seq"] == anchor["seq"] and "signed head(s) checked" in out


def test_rewrite_by_someone_without_the_key_is_caught_by_the_signed_head(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    keygen(settings)
    ports = build_ports(settings)
    for n in range(6):
        ports.audit.append({"kind": "decision", "n": n})
    ports.audit.close()
    third = [r for r in records(settings) if r.get("kind") == "decision"][2]
    drop_record(settings, third["seq"])  # no witnesses at all: only the signature can tell
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "UNSIGNED HEAD" in out


def test_forged_signature_is_reported(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    keygen(settings)
    ports = build_ports(settings)
    ports.audit.append({"kind": "decision", "tool": "load_dataset"})
    ports.audit.close()
    anchor_path = settings.audit_path.with_name("audit.head")
    anchor = json.loads(anchor_path.read_text())
    sig = anchor["signed"]["sig"]
    anchor["signed"]["sig"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    anchor_path.write_bytes(canonical(anchor) + b"\n")
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "FORGED SIGNATURE" in out and "the anchor" in out


def test_swapped_public_key_with_a_resigned_rewrite_is_reported(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    keygen(settings)
    make_history(settings)
    attacker = Ed25519PrivateKey.generate()
    forged = [({**r, **key_record(attacker)} if r.get("kind") == "audit_key" else r) for r in records(settings)]
    rewrite_chain(settings, [r for r in forged if r.get("tool") != "promote"], signer=attacker)
    assert verify(settings.audit_path).ok
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "KEY MISMATCH" in out and "WITNESS MISMATCH" in out


def test_new_key_announced_without_a_rotation_signed_by_the_old_key_is_reported(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    keygen(settings)
    ports = build_ports(settings)
    ports.audit.append(key_record(Ed25519PrivateKey.generate()))
    ports.audit.close()
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "KEY CHANGED" in out



def test_key_record_naming_another_keys_id_is_reported(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    keygen(settings)
    (announced,) = [r for r in records(settings) if r.get("kind") == "audit_key"]
    impostor = {**key_record(Ed25519PrivateKey.generate()), "key_id": announced["key_id"]}
    ports = build_ports(settings)
    ports.audit.append(impostor)
    ports.audit.close()
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "KEY CHANGED" in out and "under another key's name" in out


def test_a_command_opening_the_chain_by_path_alone_signs_its_anchor_too(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    keygen(settings)
    chain = AuditChain(settings.audit_path)  # as CLI commands and the vouching ledger open it
    chain.append({"kind": "outcome", "tool": "backup"})
    chain.close()
    anchor = json.loads(settings.audit_path.with_name("audit.head").read_text())
    assert anchor["signed"]["seq"] == anchor["seq"]
    assert not (settings.state_dir / key_path.name).exists() and key_path.read_bytes() not in settings.audit_path.with_name("audit.signer").read_bytes()
    code, out = audit_verify(settings, capsys)
    assert code == 0, out


def sign_forged_head(settings: Settings, signer: Ed25519PrivateKey) -> int:
    """Appends a linked record and signs the new head with `signer` into the anchor and the
    checkpoints, as a holder of that key could. Returns the forged record's seq."""
    last = records(settings)[-1]
    forged = {"kind": "decision", "tool": "forged", "seq": last["seq"] + 1, "time": "2030-01-01T00:00:00.000000Z", "prev": last["hash"]}
    forged["hash"] = record_hash(forged)
    with settings.audit_path.open("ab") as chain:
        chain.write(canonical(forged) + b"\n")
    head = Head(forged["seq"], forged["hash"], settings.audit_path.stat().st_size)
    signed = sign_head(signer, head, "2030-01-01T00:00:00Z")
    settings.audit_path.with_name("audit.head").write_bytes(canonical({"seq": head.seq, "hash": head.hash, "offset": head.offset, "signed": signed}) + b"\n")
    with settings.audit_path.with_name("audit.checkpoints").open("ab") as checkpoints:
        checkpoints.write(canonical(signed) + b"\n")
    return head.seq


def test_a_head_signed_by_a_key_retired_by_rotation_is_reported(key_path: Path, workspace: Path, capsys) -> None:
    """Rotating after a key leaked must stop the leaked key from vouching for new records."""
    settings = load_settings(workspace, transport="memory")
    assert keygen(settings) == 0
    retired = load_key(key_path)
    assert keygen(settings, "--rotate") == 0
    make_history(settings)
    assert audit_verify(settings, capsys)[0] == 0
    seq = sign_forged_head(settings, retired)
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "KEY OUT OF TERM" in out and f"the head at seq {seq} is signed by key {key_id(public_hex(retired))}" in out


def test_a_head_signed_before_its_key_was_announced_is_reported(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    make_history(settings)
    early = records(settings)[2]
    assert keygen(settings) == 0
    head = Head(early["seq"], early["hash"], 0)
    with settings.audit_path.with_name("audit.checkpoints").open("ab") as checkpoints:
        checkpoints.write(canonical(sign_head(load_key(key_path), head, "2030-01-01T00:00:00Z")) + b"\n")
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "KEY OUT OF TERM" in out and f"the head at seq {early['seq']}" in out


def test_a_checkpoint_with_a_number_no_signer_wrote_is_reported_not_a_crash(key_path: Path, workspace: Path, capsys) -> None:
    settings = load_settings(workspace, transport="memory")
    assert keygen(settings) == 0
    (announced,) = [r for r in records(settings) if r.get("kind") == "audit_key"]
    with settings.audit_path.with_name("audit.checkpoints").open("ab") as checkpoints:
        checkpoints.write(b'{"hash":"x","key_id":"' + announced["key_id"].encode() + b'","seq":1e999,"sig":"00","time":"t"}\n')
    code, out = audit_verify(settings, capsys)
    assert code == 1 and "FORGED SIGNATURE" in out and "audit.checkpoints line" in out
