"""Joining the configured Ray cluster, with a bound on how long that may take.

`ray.init` has no timeout of its own: given a GCS address that accepts TCP connections but never
answers (a frozen or SIGSTOPped head node, a silent service on the port, a half-open partition)
it waits for minutes while holding this process's one connection lock, and every probe and run
behind it waits too. So before `ray.init` the GCS, at the very address `ray.init` is then given,
must answer the opening of an HTTP/2 connection (gRPC's transport) within
`connect_timeout_seconds`: every HTTP/2 server's first frame is SETTINGS, sent before any
authentication, so no token is needed to see it. With RAY_USE_TLS the check speaks TLS first
(presenting Ray's certificate when one is configured); a server that completes or rejects the TLS
handshake has answered.

`auto` is resolved as Ray resolves it (RAY_ADDRESS, then the cluster this host started last): the
process environment then chooses the cluster, which is why a stdio server, whose environment is
the agent's, refuses `auto` (server/commands/serve.py). The address never reaches a message.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import socket
import ssl
import threading
import time

import ray
from ray._private import ray_constants, services

from server.settings import RayExecutorSettings

REFUSED_CHECK_S = 5.0
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, no flags, stream 0
H2_SETTINGS = 0x4
_CONNECT = threading.Lock()


def connect(config: RayExecutorSettings) -> None:
    """Joins the configured cluster once per process (a process that already joined one keeps it).
    Raises ConnectionError when the cluster cannot be found, refuses connections or does not
    answer a handshake within config.connect_timeout_seconds."""
    with _CONNECT:
        if ray.is_initialized():
            return
        address = bootstrap_address(str(config.address))
        check_answers(address, config.connect_timeout_seconds)
        _no_stack_dump_on_sigterm()
        ray.init(address=address, namespace=config.namespace, log_to_driver=False, logging_level=logging.WARNING)


def _no_stack_dump_on_sigterm() -> None:
    """Ray's core installs absl's failure signal handler, which prints a stack dump on SIGTERM too:
    every cancel_run of a detached run and every stop of a server would leave a "*** SIGTERM
    received ***" trace that reads like a crash. Read by ray.init, so set just before it. Real
    crashes still dump (faulthandler: SIGSEGV, SIGABRT...). An operator who sets
    RAY_DISABLE_FAILURE_SIGNAL_HANDLER keeps that choice."""
    if "RAY_DISABLE_FAILURE_SIGNAL_HANDLER" in os.environ:
        return
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    if not faulthandler.is_enabled():
        faulthandler.enable()


def bootstrap_address(address: str) -> str:
    """The GCS host:port `ray.init` would join for `address` (host:port or auto)."""
    try:
        resolved = services.canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as exc:
        raise ConnectionError(f"no Ray cluster found for the configured address ({type(exc).__name__})") from None
    if resolved is None:  # "local" (from RAY_ADDRESS): ray.init would start a cluster of its own
        raise ConnectionError("the configured address names no running Ray cluster")
    return resolved


def check_answers(address: str, timeout: float) -> None:
    """Raises ConnectionError unless the GCS at host:port answers an HTTP/2 opening in `timeout`."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    context = _tls_context() if _tls_on() else None
    try:  # a closed port fails here at once
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout, REFUSED_CHECK_S))
    except OSError:
        raise ConnectionError("the Ray cluster does not accept connections") from None
    conn = sock
    try:
        conn = _over_tls(context, sock, host, deadline) if context else sock
        _expect_settings(conn, deadline)
    except ssl.SSLError:
        return  # it answered the TLS handshake (with a refusal this check cannot judge; ray.init will)
    except (TimeoutError, OSError, ConnectionError):
        raise ConnectionError(f"the Ray cluster accepted a connection but did not answer within {timeout:g} s") from None
    finally:
        conn.close()


def _expect_settings(sock: socket.socket, deadline: float) -> None:
    """Sends the HTTP/2 client preface and reads the server's first frame header: SETTINGS."""
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    sock.sendall(H2_PREFACE + H2_EMPTY_SETTINGS)
    header = b""
    while len(header) < 9:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(9 - len(header))
        if not chunk:
            raise ConnectionError("closed before answering")
        header += chunk
    if header[3] != H2_SETTINGS:
        raise ConnectionError("not an HTTP/2 server")


def _tls_on() -> bool:
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def _tls_context() -> ssl.SSLContext:
    """A TLS client for liveness only: the server's certificate is not judged here (ray.init does).
    Raises ConnectionError when Ray's own certificate is configured but cannot be read."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    cert, key = os.environ.get("RAY_TLS_SERVER_CERT"), os.environ.get("RAY_TLS_SERVER_KEY")
    if cert and key:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError):
            raise ConnectionError("RAY_TLS_SERVER_CERT / RAY_TLS_SERVER_KEY cannot be read as a certificate and its key") from None
    return context


def _over_tls(context: ssl.SSLContext, sock: socket.socket, host: str, deadline: float) -> ssl.SSLSocket:
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    return context.wrap_socket(sock, server_hostname=host.strip("[]") or None)
