"""`mlgate serve`: stdio by default (the client starts the server), or HTTP with bearer tokens."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from server.app import build_server
from server.cli import add_workspace_option
from server.workspace import check_is_workspace
from server.credentials import TokenHolder, exposed_approver_token, stdio_holder
from server.files import open_to_others
from server.identity import UNAUTHENTICATED
from server.ports import build_ports
from server.recovery import recover
from server.settings import Settings, load_settings
from tools.errors import PolicyDenied


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="serve the governed tools over stdio (default) or HTTP")
    add_workspace_option(serve)  # checked once settings load: a bad setting is named first
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at /mcp and SSE at /sse on HOST:PORT (needs a token: mlgate token create)",
    )
    serve.set_defaults(handler=serve_command)


def reconcile_in_background(ports: Any) -> threading.Thread:
    """What a dead server left half-done is repaired (server/recovery.py: RUNNING runs become
    FAILED, approval files and aliases follow their records) and the store's planner statistics
    brought up to date; in a thread, so MLflow's import never
    delays the first answer to a client."""

    def reconcile() -> None:
        try:
            recover(ports)
            ports.tracking.refresh_statistics()  # a store from before statistics were kept (server/tracking_stats.py)
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read is reported, not fatal
            print(f"mlgate: could not recover what a previous server left half-done ({type(exc).__name__})", file=sys.stderr)

    thread = threading.Thread(target=reconcile, name="mlgate-reconcile", daemon=True)
    thread.start()
    return thread


def serve_command(args: argparse.Namespace) -> int:
    if args.http:
        return _serve_http(args)
    settings = load_settings(args.workspace, transport="stdio")
    check_is_workspace(settings.workspace)
    refusal = stdio_refusal(settings)
    try:
        local = None if refusal is not None or settings.local_role == "agent" else _human_holder(settings)
    except PolicyDenied as denied:
        refusal = f"{denied.reason}; {denied.remediation}"
    if refusal is not None:
        print(f"mlgate: {refusal}", file=sys.stderr)
        return 2
    ports = build_ports(settings)
    warn_if_open(settings)
    server = build_server(settings, ports, local=local)
    reconcile_in_background(ports)  # after the tools' imports, which it would slow down by sharing the GIL
    server.run("stdio")
    return 0


def warn_if_open(settings: Settings) -> None:
    """A state directory made before mlgate created it 0700 may still be open to every user of the
    host; its mode is the owner's choice, so it is named, not changed."""
    mode = open_to_others(settings.state_dir)
    if mode is not None:
        print(f"mlgate: warning: the state directory {settings.state_dir} is open to other users of this host (mode {mode:04o}): "
              f"its tracking store, approvals and run directories are readable; `chmod 700 {settings.state_dir}` makes it private", file=sys.stderr)


def _human_holder(settings: Settings) -> TokenHolder:
    """A human's or operator's stdio server acts for their token, checked at every call; a
    revoked one falls back to an unnamed agent."""
    default_name = Settings.model_fields["local_principal"].default
    named = None if settings.local_principal == default_name else settings.local_principal
    return stdio_holder(settings.state_dir, settings.local_role, named, UNAUTHENTICATED)


def stdio_refusal(settings: Settings) -> str | None:
    """Why a stdio server must not start: it runs in the agent's environment, so nothing that
    environment holds may choose who approves or which machines train and report runs. An agent's
    server (the default role) refuses an approver's token there; a human's or operator's needs
    exactly that token (serve_command, server/credentials.py stdio_holder)."""
    exposed = exposed_approver_token(settings.state_dir) if settings.local_role == "agent" else None
    if exposed is not None:  # the agent could approve as this human
        return (f"MLGATE_TOKEN holds the {exposed.role} token of {exposed.name!r} in the environment the agent runs in; "
                "unset it there and give it only in your own terminal (or at the prompt)")
    if settings.executor.backend == "ray" and settings.executor.ray.address == "auto":  # RAY_ADDRESS would pick the cluster
        return ("executor.ray.address is auto: on stdio the agent's environment (RAY_ADDRESS) would choose the Ray cluster "
                "that trains and reports runs; set the head's GCS host:port in <state_dir>/server.yaml and acknowledge it")
    return None


def _serve_http(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - HTTP only: a stdio server starts without it (bench.cold_start)

    from server.http import build_http_app, parse_bind, uvicorn_config  # noqa: PLC0415

    bind = parse_bind(args.http)
    settings = load_settings(args.workspace)
    check_is_workspace(settings.workspace)
    ports = build_ports(settings)
    warn_if_open(settings)
    app = build_http_app(settings, bind, ports=ports)
    reconcile_in_background(ports)
    print(f"mlgate: serving {bind.url}/mcp (streamable HTTP) and {bind.url}/sse (SSE); bearer token required", file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, bind)).run()
    return 0
