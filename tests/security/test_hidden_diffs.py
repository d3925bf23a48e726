"""Attacks on the training guard by an agent with its own shell: added lines hidden from the diff
open_pr reads, by marking files binary in an untracked .gitattributes, in .git/info/attributes or
with the repository's core.bigFileThreshold. The guard must still see every added line.

Real git (the agent's own files and config), a real workspace, runs in a real MLflow sqlite store,
the local PR provider and a real MCP client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.git import GitRepo
from server.ports import Ports
from server.settings import Settings
from tests.tools.test_open_pr import commit_on, connect, make_run, mlflow_client, nothing_pushed_or_recorded, open_pr, ports, repo, settings, store, tracking_uri  # noqa: F401 - fixtures

pytestmark = pytest.mark.anyio
TRAINING = "\n\ndef scale(frame):\n    return StandardScaler().fit(frame)\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(text)


HIDERS: dict[str, Callable[[Path], None]] = {
    "untracked-gitattributes": lambda ws: _write(ws / ".gitattributes", "*.py -diff\n"),
    "info-attributes": lambda ws: _write(ws / ".git" / "info" / "attributes", "* binary\n"),
    "big-file-threshold": lambda ws: _write(ws / ".git" / "config", "[core]\n\tbigFileThreshold = 1\n"),
}


@pytest.mark.parametrize("hider", sorted(HIDERS))
async def test_training_calls_hidden_as_binary_are_still_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, hider: str) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/hidden", text=TRAINING))
    HIDERS[hider](repo.path)
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/hidden")
    assert is_error and result["rule_id"] == "pr.training_guard" and "src/features.py:" in result["reason"], result
    assert nothing_pushed_or_recorded(settings, "agent/hidden")


async def test_training_calls_in_a_path_git_prints_unquoted_are_still_refused(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/quoted", relpath='src/日"x.py', text=TRAINING))
    _write(repo.path / ".git" / "config", "[core]\n\tquotePath = false\n")
    async with connect(settings, ports) as client:
        is_error, result = await open_pr(client, run_id, branch="agent/quoted")
    assert is_error and result["rule_id"] == "pr.training_guard" and 'src/日"x.py:' in result["reason"], result
    assert nothing_pushed_or_recorded(settings, "agent/quoted")
