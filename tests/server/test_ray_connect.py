"""Joining a Ray cluster is bounded (server/ray_connect.py): a GCS address that accepts TCP but
never answers (a frozen head) is given up after connect_timeout_seconds instead of holding
ray.init for minutes; `auto` resolves as Ray resolves it and never starts a cluster; a ray://
address is refused by the settings. Real sockets; no Ray head (a process that joined one could
not test this: the real GCS's answer is tested in test_ray_executor.py beside its head)."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from server.cli import main
from server.ray_connect import bootstrap_address, check_answers
from server.settings import RayExecutorSettings
from tests.server.test_detached_ray import closed_address
from tests.server.test_ray_executor import call, on_ray
from tests.tools.test_run_experiment import REASONING, _experiments, governed  # noqa: F401 - fixture

ray = pytest.importorskip("ray")


@pytest.fixture
def silent_gcs() -> Iterator[str]:
    """host:port of a listener whose kernel accepts connections and which never sends a byte. On
    every interface, as a GCS listens: Ray resolves 127.0.0.1 to the host's own address."""
    with socket.socket() as listener:
        listener.bind(("", 0))
        listener.listen(16)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def seconds_to_refuse(address: str, timeout: float) -> float:
    started = time.monotonic()
    with pytest.raises(ConnectionError) as refused:
        check_answers(address, timeout)
    assert address not in str(refused.value)
    return time.monotonic() - started


def test_a_gcs_that_accepts_but_never_answers_is_given_up_after_the_connect_timeout(silent_gcs: str) -> None:
    assert 1.0 <= seconds_to_refuse(silent_gcs, 1.0) < 3.0


def test_a_closed_port_is_refused_at_once() -> None:
    assert seconds_to_refuse(closed_address(), 30.0) < 2.0


def test_a_tls_gcs_that_never_answers_the_handshake_is_given_up_too(silent_gcs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_USE_TLS", "1")
    assert 1.0 <= seconds_to_refuse(silent_gcs, 1.0) < 3.0


def test_a_server_that_answers_but_not_in_http2_is_refused() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        server = threading.Thread(target=_answer_http1, args=(listener,), daemon=True)
        server.start()
        assert seconds_to_refuse(address, 5.0) < 5.0
        server.join(timeout=5)


def _answer_http1(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.recv(64)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_auto_takes_ray_address_from_the_environment(silent_gcs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", silent_gcs)
    assert bootstrap_address("auto").endswith(":" + silent_gcs.rpartition(":")[2])


def test_auto_never_starts_a_cluster_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "local")
    with pytest.raises(ConnectionError, match="names no running Ray cluster"):
        bootstrap_address("auto")


def test_an_explicit_address_is_not_overridden_by_ray_address(silent_gcs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.255.0.1:7777")
    assert bootstrap_address(silent_gcs).endswith(":" + silent_gcs.rpartition(":")[2])


@pytest.mark.anyio
@pytest.mark.timeout(90)  # without the check, ray.init holds the probe's thread for minutes
async def test_a_run_on_a_frozen_cluster_is_refused_within_the_connect_timeout(governed: dict[str, Any], silent_gcs: str, tmp_path: Path) -> None:
    if ray.is_initialized():
        pytest.skip("this process already joined a Ray cluster (one per process)")
    remote = on_ray(governed, silent_gcs, tmp_path, connect_timeout_seconds=2)
    started = time.monotonic()
    result = await call(remote, {"reasoning": REASONING})
    assert 2 <= time.monotonic() - started < 30  # the probe waited out the silence, then gave up
    content = json.dumps(result.structured_content)
    assert result.is_error and "executor.isolation" in content
    assert silent_gcs not in content + remote["settings"].audit_path.read_text()
    assert not ray.is_initialized()


@pytest.mark.parametrize("address", ["10.0.0.5:6379", "head.internal:6379", "[fd00::5]:6379", "auto"])
def test_a_gcs_address_or_auto_is_a_valid_setting(address: str) -> None:
    assert RayExecutorSettings(address=address).address == address


@pytest.mark.parametrize("address", ["ray://head:10001", "ray://user:s3cret@head:10001", "head", "head:port", "head:6379/x"])
def test_other_addresses_are_refused_by_the_settings(address: str) -> None:
    with pytest.raises(ValidationError, match="host:port of the head node"):
        RayExecutorSettings(address=address)


def test_the_command_line_names_a_bad_setting_without_repeating_its_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".mlgate").mkdir()
    (tmp_path / ".mlgate" / "server.yaml").write_text("executor:\n  backend: ray\n  ray:\n    address: ray://ops:s3cret@head:10001\n")
    assert main(["serve", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "executor.ray.address" in err and "s3cret" not in err and "head:10001" not in err
    assert "Traceback" not in err


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509  # noqa: PLC0415 - only these tests make certificates
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gcs")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "gcs.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "gcs.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "gcs.pem", tmp_path / "gcs.key"


def serve_tls_once(listener: socket.socket, cert: tuple[Path, Path], first_frame: bytes | None) -> None:
    """Completes one TLS handshake (ALPN h2), reads the client's opening and sends `first_frame`
    (None: nothing, then waits for the client to give up)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, cert))
    context.set_alpn_protocols(["h2"])
    conn, _ = listener.accept()
    with context.wrap_socket(conn, server_side=True) as tls:
        tls.recv(64)
        if first_frame is not None:
            tls.sendall(first_frame)
        tls.settimeout(10)
        try:
            tls.recv(64)
        except (OSError, ssl.SSLError):
            pass


@pytest.mark.parametrize(("first_frame", "answers"), [(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", True), (None, False)], ids=["settings", "silent"])
def test_over_tls_a_gcs_answers_with_its_http2_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_frame: bytes | None, answers: bool) -> None:
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        server = threading.Thread(target=serve_tls_once, args=(listener, self_signed(tmp_path), first_frame), daemon=True)
        server.start()
        if answers:
            check_answers(address, 5.0)
        else:
            assert 1.0 <= seconds_to_refuse(address, 1.0) < 3.0
        server.join(timeout=15)


def test_an_unreadable_ray_certificate_is_named_as_such(silent_gcs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_USE_TLS", "1")
    monkeypatch.setenv("RAY_TLS_SERVER_CERT", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("RAY_TLS_SERVER_KEY", str(tmp_path / "missing.key"))
    with pytest.raises(ConnectionError, match="RAY_TLS_SERVER_CERT"):
        check_answers(silent_gcs, 1.0)
