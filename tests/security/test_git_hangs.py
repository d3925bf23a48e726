"""Attacks on the server's git calls by an agent with its own shell: a repository config that
includes a named pipe makes every git that reads it wait forever. The server must refuse with a
governed error within its git timeout, never hold a thread (and the tool call) for ever.

Real git, a real FIFO in the workspace's .git/config include, a real MCP client.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.git import GitRepo
from server.ports import Ports
from server.settings import Settings
from tests.tools.test_open_pr import commit_on, connect, make_run, mlflow_client, nothing_pushed_or_recorded, open_pr, ports, repo, settings, store, tracking_uri  # noqa: F401 - fixtures
from tools.errors import GitRefused

pytestmark = pytest.mark.anyio


def include_a_pipe(repo: GitRepo, tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with (repo.path / ".git" / "config").open("a") as handle:
        handle.write(f"[include]\n\tpath = {pipe}\n")


def test_a_config_include_of_a_pipe_is_refused_within_the_git_timeout(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "ws")
    repo.timeout_seconds = 1.0
    include_a_pipe(repo, tmp_path)
    started = time.monotonic()
    with pytest.raises(GitRefused) as refused:
        repo.head()
    assert refused.value.rule_id == "git.timeout" and "did not finish" in refused.value.reason and "include" in refused.value.remediation
    assert time.monotonic() - started < 10


async def test_open_pr_on_a_workspace_whose_git_never_answers_is_refused_not_held(settings: Settings, ports: Ports, repo: GitRepo, mlflow_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = make_run(mlflow_client, repo, commit_on(repo, "agent/hang"))
    monkeypatch.setattr(GitRepo, "timeout_seconds", 2.0)
    include_a_pipe(repo, tmp_path)
    with anyio.fail_after(60):
        async with connect(settings, ports) as client:
            is_error, result = await open_pr(client, run_id, branch="agent/hang")
    assert is_error and result["rule_id"] == "git.timeout" and result["remediation"], result
    assert not (settings.state_dir / "prs").exists() or list((settings.state_dir / "prs").glob("*.json")) == []
