"""Attacks on promote's PR reachability by an agent with its own shell: a PR record written by hand
in <state_dir>/prs/, or the PR branch moved with plain git, to put a commit that never went
through open_pr (its diff checks, its push) "on a recorded PR branch".

A real workspace with a real run and PR (tests/tools/promotion_lab.py), a second real run on an
unreviewed commit, real git, promote through a real MCP client.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from server.app import build_server
from tests.tools.promotion_lab import REASONING, Lab, build_lab, call, reset_registry

pytestmark = pytest.mark.anyio
UNREVIEWED = "agent/unreviewed"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("pr-reach"))


@pytest.fixture(autouse=True)
def clean_registry(lab: Lab) -> None:
    reset_registry(lab)


@pytest.fixture(scope="module")
def unreviewed(lab: Lab) -> tuple[str, str]:
    """(run id, commit) of a real run on a commit nobody called open_pr for."""
    import anyio

    lab.repo.run("checkout", "-q", "-B", UNREVIEWED, "main")
    features = lab.workspace / "src/features.py"
    features.write_text(features.read_text() + "\n# never through open_pr\n")
    commit = lab.repo.commit_all("unreviewed work")

    async def run() -> str:
        async with Client(build_server(lab.settings, lab.ports)) as client:
            result = await client.call_tool("run_experiment", {"reasoning": REASONING})
        assert not result.is_error, result.structured_content
        return result.structured_content["run_id"]

    run_id = anyio.run(run)
    lab.repo.run("checkout", "-q", "main")
    return run_id, commit


def pr_record(lab: Lab) -> tuple[Path, dict]:
    path = sorted((lab.settings.state_dir / "prs").glob("*.json"))[0]
    return path, json.loads(path.read_text())


def gate(content: dict, name: str) -> dict:
    return next(g for g in content["gate_receipt"]["gates"] if g["gate"] == name)


async def test_the_run_open_pr_pushed_is_on_a_recorded_pr_branch(lab: Lab) -> None:
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
    assert not failed and gate(content, "commit_on_pr_branch")["status"] == "PASS", content


async def test_a_pr_record_written_by_hand_does_not_put_a_commit_on_a_pr_branch(lab: Lab, unreviewed: tuple[str, str]) -> None:
    run_id, commit = unreviewed
    path, record = pr_record(lab)
    forged = path.parent / "local-999.json"
    forged.write_text(json.dumps({**record, "id": "local#999", "number": 999, "branch": UNREVIEWED, "commit": commit}))
    try:
        failed, content = await call(lab, "promote", {"run_id": run_id})
        assert failed and gate(content, "commit_on_pr_branch")["status"] == "FAIL", content
    finally:
        forged.unlink()


async def test_a_pr_branch_moved_with_git_does_not_put_a_commit_on_it(lab: Lab, unreviewed: tuple[str, str]) -> None:
    run_id, commit = unreviewed
    branch = pr_record(lab)[1]["branch"]
    reviewed = lab.repo.branch_head(branch)
    lab.repo.run("branch", "-f", branch, commit)  # the attack: the PR branch now holds unreviewed work
    try:
        failed, content = await call(lab, "promote", {"run_id": run_id})
        assert failed and gate(content, "commit_on_pr_branch")["status"] == "FAIL", content
    finally:
        lab.repo.run("branch", "-f", branch, reviewed)


async def test_a_server_without_a_record_of_pushes_counts_no_pr_branch(lab: Lab) -> None:
    pushed, lab.ports.pushed_commits = lab.ports.pushed_commits, None  # a server built without the port fails closed
    try:
        failed, content = await call(lab, "promote", {"run_id": lab.run_id})
        assert failed and gate(content, "commit_on_pr_branch")["status"] == "FAIL", content
    finally:
        lab.ports.pushed_commits = pushed
