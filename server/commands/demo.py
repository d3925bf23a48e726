"""`mlgate demo`: a demo workspace and a scripted agent session over a real MCP client (stdio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser("demo", help="create a demo workspace and drive a scripted agent session through MCP")
    demo.add_argument("--dir", type=Path, default=None, help="empty directory for the demo (default: a new temporary directory)")
    demo.add_argument("--rows", type=int, default=2000, help="rows of the synthetic credit dataset (default 2000)")
    demo.add_argument("--no-train", action="store_true", help="skip run_experiment")
    demo.set_defaults(handler=demo_command)


def demo_command(args: Any) -> int:
    from server.demo import prepare, say, session

    workspace, content_hash = prepare(args.dir, args.rows)
    say("0. demo workspace", f"{workspace}\ndataset content hash {content_hash}")
    answers = anyio.run(lambda: session(workspace, content_hash, train=not args.no_train))
    expected = answers["audit_ok"] and answers["denied"].get("is_error") and not answers["approved"].get("is_error")
    if not args.no_train:
        expected = expected and not answers["run"].get("is_error")
    print(f"\nworkspace: {workspace}\nMLflow UI: uv run mlgate ui --workspace {workspace}")
    return 0 if expected else 1
