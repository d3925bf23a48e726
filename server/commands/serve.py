"""`mlgate serve`: stdio by default (the client starts the server), or HTTP with bearer tokens."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from server.app import build_server
from server.cli import add_workspace_option
from server.http import build_http_app, parse_bind, uvicorn_config
from server.settings import load_settings


def register(subparsers) -> None:
    serve = subparsers.add_parser("serve", help="serve the governed tools over stdio (default) or HTTP")
    add_workspace_option(serve)
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at /mcp and SSE at /sse on HOST:PORT (needs a token: mlgate token create)",
    )
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    if args.http:
        return _serve_http(args)
    build_server(load_settings(args.workspace, transport="stdio")).run("stdio")
    return 0


def _serve_http(args: argparse.Namespace) -> int:
    bind = parse_bind(args.http)
    app = build_http_app(load_settings(args.workspace), bind)
    print(f"mlgate: serving {bind.url}/mcp (streamable HTTP) and {bind.url}/sse (SSE); bearer token required", file=sys.stderr)
    uvicorn.Server(uvicorn_config(app, bind)).run()
    return 0
