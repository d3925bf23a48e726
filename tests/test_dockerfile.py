"""The Dockerfile, parsed: a digest-pinned base, two stages, the locked environment installed
before the code, every package of the wheel copied, a non-root user, the sandbox installed, and
`mlgate serve --http` as the command. (No Docker engine runs the build in CI.)"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(row.split(None, 1)[0].upper(), row.split(None, 1)[1] if " " in row else "") for row in rows]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for op, args in instructions():
        if op == "FROM":
            found.append([])
        if found:
            found[-1].append((op, args))
    return found


def base_image() -> str:
    (arg,) = [args for op, args in instructions() if op == "ARG" and args.startswith("PYTHON_IMAGE=")]
    return arg.split("=", 1)[1]


def test_the_base_image_is_pinned_by_digest_and_every_stage_uses_it() -> None:
    assert DIGEST.search(base_image())
    assert [s[0][1].split()[0] for s in stages()] == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_the_locked_dependencies_install_before_the_code_is_copied() -> None:
    build = stages()[0]
    runs = [i for i, (op, args) in enumerate(build) if op == "RUN" and "uv sync" in args]
    assert len(runs) == 2 and all("--locked" in build[i][1] for i in runs)
    assert "--no-install-project" in build[runs[0]][1]
    first_code = min(i for i, (op, args) in enumerate(build) if op == "COPY" and args.startswith(("server", "tools", "policies")))
    assert runs[0] < first_code < runs[1]


def test_every_package_of_the_wheel_is_copied_into_the_image() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {args.split()[0].rstrip("/") for op, args in stages()[0] if op == "COPY"}
    assert set(packages) | {"configs"} <= copied


def test_the_runtime_runs_as_a_non_root_user_with_the_sandbox_installed() -> None:
    runtime = stages()[-1]
    users = [args for op, args in runtime if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    installs = " ".join(args for op, args in runtime if op == "RUN")
    assert "bubblewrap" in installs and "git" in installs
    assert not any(op == "RUN" and "uv " in args for op, args in runtime)


def test_the_image_serves_http_from_the_workspace_volume() -> None:
    runtime = dict((op, args) for op, args in stages()[-1])
    assert json.loads(runtime["ENTRYPOINT"]) == ["mlgate"]
    command = json.loads(runtime["CMD"])
    assert command[:1] == ["serve"] and "--http" in command and command[command.index("--workspace") + 1] == "/workspace"


@pytest.mark.parametrize("ignored", [".git", ".venv", ".mlgate"])
def test_the_build_context_leaves_out_state_and_local_environments(ignored: str) -> None:
    assert ignored in (ROOT / ".dockerignore").read_text().split()
