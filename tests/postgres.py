"""A real PostgreSQL cluster and a real `mlflow server` on it, on loopback, for the tests.

The cluster is private to the test session: `initdb` into a temporary directory, `pg_ctl start`
listening on 127.0.0.1 on a free port with its unix socket in the same directory (never the
system service). PostgreSQL refuses to run as root, so under root the cluster directory belongs
to the `postgres` user and every server command runs through `runuser -u postgres`. The MLflow
tracking server stores runs and the registry in a database of that cluster and serves artifacts
from a local directory (`--serve-artifacts`), as a team's shared server would.

Waits are bounded: each start polls for readiness until a deadline, never a fixed sleep. The
session-scoped fixtures (`postgres`, `tracking_server`) are shared by every test module that asks
(tests/server/conftest.py) and stopped at the end of the session; each caller that needs a clean
store takes its own database (`PostgresCluster.create_database`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
START_TIMEOUT_S = 240.0  # a loaded CI machine: the mlflow server migrates an empty database first (about 35 s idle)
STOP_TIMEOUT_S = 20.0
POLL_S = 0.1


def pg_bin() -> Path | None:
    """The directory of initdb/pg_ctl (Debian's layout, then PATH), or None when PostgreSQL is missing."""
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").is_file():
            return directory
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres() -> list[str]:
    """The prefix that runs a server command as an unprivileged user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # KeyError: no postgres user (install the postgresql package)
    return ["runuser", "-u", "postgres", "--"]


def _poll(ready: Callable[[], bool], what: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Poll `ready()` until it is true; raises RuntimeError past the deadline or when `process` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        time.sleep(POLL_S)
    raise RuntimeError(f"{what} was not ready after {timeout_s:.0f} s")


@dataclass
class PostgresCluster:
    root: Path
    port: int
    bin: Path
    user: str = "postgres"
    databases: list[str] = field(default_factory=list)

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> str:
        done = subprocess.run([*_as_postgres(), *argv], capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)
        if done.returncode:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """Create an empty database `name`; returns its URI."""
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        self.databases.append(name)
        return self.uri(name)

    def accepts_connections(self) -> bool:
        probe = [*_as_postgres(), str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        return subprocess.run(probe, capture_output=True, timeout=10, check=False).returncode == 0


@contextmanager
def running_postgres() -> Iterator[PostgresCluster]:
    """A private cluster on 127.0.0.1 (trust authentication on loopback only), removed afterwards.
    Skips the test when PostgreSQL is not installed (`.ci/run` installs it)."""
    binaries = pg_bin()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # not under pytest's tmp dir: that is private to the test user, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="mlgate-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(root, free_port(), binaries)
    data = root / "data"
    cluster._run(str(binaries / "initdb"), "-D", str(data), "-U", cluster.user, "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-c listen_addresses=127.0.0.1 -p {cluster.port} -c unix_socket_directories={root} -c fsync=off"
    cluster._run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "-t", str(int(START_TIMEOUT_S)), "start")
    try:
        _poll(cluster.accepts_connections, "postgres", START_TIMEOUT_S)
        yield cluster
    finally:
        subprocess.run([*_as_postgres(), str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", str(int(STOP_TIMEOUT_S)), "stop"], capture_output=True, timeout=STOP_TIMEOUT_S + 10, check=False)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class TrackingServer:
    url: str
    backend_uri: str
    artifacts: Path
    process: subprocess.Popen


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_tracking_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[TrackingServer]:
    """`mlflow server` on a free loopback port over `backend_uri`, serving artifacts from
    `artifacts`; stopped (its whole process group) afterwards."""
    port = free_port()
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--serve-artifacts", "--artifacts-destination", str(artifacts)]  # fmt: skip
    # no background job runner (MLflow's GenAI jobs: a dozen idle worker processes mlgate never uses)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_DISABLE_AGENT_HINT": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    artifacts.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = TrackingServer(f"http://127.0.0.1:{port}", backend_uri, artifacts, process)
    try:
        _poll(lambda: _answers(server.url), f"mlflow server (log: {log})", START_TIMEOUT_S, process)
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)


# --- fixtures (shared through tests/server/conftest.py) ------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    with running_postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tracking_server(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    root = tmp_path_factory.mktemp("tracking-server")
    with running_tracking_server(postgres.create_database("mlflow"), root / "artifacts", root / "server.log") as server:
        yield server
