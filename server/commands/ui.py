"""`mlgate ui`: the MLflow UI on the workspace's tracking store, bound to loopback, read-only.

The MLflow UI has no authentication of its own and its REST API can write (tags, deletions,
uploads through its artifact proxy), so mlgate only starts it on a loopback address, opens the
embedded sqlite store read-only (SQLite's `mode=ro`: a write is refused by the database) and turns
the artifact proxy off (the UI still shows a run's artifacts, read from their location). Any local
process can reach a loopback port; none can change a run through it. A team that wants a UI on
the network puts an authenticating proxy in front of a tracking server instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from server.cli import add_workspace_option
from server.settings import load_settings

LOOPBACK_NAMES = ("localhost",)


def register(subparsers: Any) -> None:
    ui = subparsers.add_parser("ui", help="open the MLflow UI on this workspace's runs and models (loopback only)")
    add_workspace_option(ui, governed=True)
    ui.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui.set_defaults(handler=ui_command)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ui_argv(python: str, tracking_uri: str, host: str, port: int) -> list[str]:
    """The MLflow UI command line (pure): the workspace's store read-only, no artifact proxy, one
    worker, the given bind."""
    store = read_only(tracking_uri)
    return [python, "-m", "mlflow", "ui", "--backend-store-uri", store, "--registry-store-uri", store, "--no-serve-artifacts",
            "--host", host, "--port", str(port), "--workers", "1"]  # fmt: skip


def read_only(tracking_uri: str) -> str:
    """An embedded `sqlite:///PATH` store as SQLite's read-only URI filename. The path is quoted
    twice: SQLAlchemy unquotes the URL once, SQLite the URI filename once (a space, `#` or `?` in
    the workspace path stays part of the path). Any other store is returned as it is."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.startswith("sqlite:///file:"):
        return tracking_uri
    path = tracking_uri.removeprefix("sqlite:///")
    return f"sqlite:///file:{quote(quote(path, safe='/'), safe='/')}?mode=ro&uri=true"


def port_in_use(host: str, port: int) -> bool:
    """Whether binding host:port fails now. Checked before starting MLflow, whose server waits
    without a word when its port is taken."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as MLflow's server binds: a closed UI's TIME_WAIT is no obstacle
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def ui_command(args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        print(f"mlgate: refusing to serve the MLflow UI on {args.host}: it has no authentication", file=sys.stderr)
        print("  what to do: bind a loopback address (the default) and reach it through an SSH tunnel or an authenticating proxy", file=sys.stderr)
        return 2
    if not 1 <= args.port <= 65535:
        print(f"mlgate: port {args.port} is out of range 1-65535", file=sys.stderr)
        print("  what to do: give --port a number from 1024 to 65535 (default 5000)", file=sys.stderr)
        return 2
    settings = load_settings(args.workspace)
    scheme = settings.mlflow_uri.split(":", 1)[0].lower()
    if scheme in ("http", "https"):
        print("mlgate: this workspace tracks runs on an MLflow tracking server, which serves its own UI", file=sys.stderr)
        print("  what to do: open the tracking server's address in a browser (ask the operator for it)", file=sys.stderr)
        return 2
    if scheme != "sqlite":
        # Only the embedded store can be opened read-only from here; a UI on a shared database could write to it.
        print(f"mlgate: this workspace tracks runs in a shared {scheme.split('+')[0]} database; mlgate ui opens only the embedded store, read-only", file=sys.stderr)
        print("  what to do: run MLflow's UI against that database with a read-only database role, or use the tracking server's UI", file=sys.stderr)
        return 2
    if settings.tracking_uri is None and not (settings.state_dir / "mlflow.db").is_file():
        print(f"mlgate: {settings.workspace} has no runs yet (no MLflow store under {settings.state_dir.name}/)", file=sys.stderr)
        print("  what to do: run an experiment first, or check --workspace", file=sys.stderr)
        return 2
    if port_in_use(args.host, args.port):
        print(f"mlgate: port {args.port} on {args.host} is in use (another UI or server)", file=sys.stderr)
        print("  what to do: pick a free one with --port, or stop what listens there", file=sys.stderr)
        return 2
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    print(f"MLflow UI for {settings.workspace.name}: http://{args.host}:{args.port}", flush=True)
    argv = ui_argv(sys.executable, settings.mlflow_uri, args.host, args.port)
    return run_forwarding_stops(argv, env, Path(settings.state_dir))


STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_forwarding_stops(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Runs the UI in a process group of its own and hands it every stop this process gets: MLflow's
    UI runs its web server as a child, which a plain `kill` of `mlgate ui` alone left running."""
    process = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True)
    previous = {stop: signal.signal(stop, lambda number, _frame: _stop_group(process.pid, number)) for stop in STOPS}
    try:
        return process.wait()
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
        _stop_group(process.pid, signal.SIGKILL)  # whatever of the group outlived the UI's own exit


def _stop_group(group: int, number: int) -> None:
    try:
        os.killpg(group, number)
    except ProcessLookupError:
        pass
