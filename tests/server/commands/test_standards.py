"""`mlgate standards set|status` on real workspaces: one commit on main for the standards and
experiment.yaml, acknowledged with the operator's own token; nothing written when refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from server.cli import main
from server.git import GitRepo
from server.ports import build_ports
from server.safe_yaml import load_document
from server.settings import Settings, load_settings, policy_limits
from tests.credentials import issue, use_token

STANDARDS, EXPERIMENT = "configs/project_standards.yaml", "configs/experiment.yaml"
GIT_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MLGATE_"))}, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
LENDING = ["--target", "loan_status", "--positive-class", "Charged Off", "Late", "--time-column", "issue_d", "--pii", "id", "emp_title", "--protected", "addr_state"]


def committed(workspace: Path, relpath: str, ref: str = "main") -> dict:
    return load_document(GitRepo(workspace).show(ref, relpath) or b"", policy_limits()["documents"])


def set_standards(workspace: Path, *args: str) -> int:
    return main(["standards", "set", "--workspace", str(workspace), "--yes", *args])


def test_set_writes_standards_and_experiment_in_one_acknowledged_commit(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, before = GitRepo(workspace), GitRepo(workspace).head()
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert set_standards(workspace, *LENDING) == 0
    assert repo.text("rev-parse", "main^") == before and sorted(repo.changed_paths(before or "", repo.head() or "")) == [EXPERIMENT, STANDARDS]
    standards, experiment = committed(workspace, STANDARDS), committed(workspace, EXPERIMENT)
    assert standards["label"] == {"target": "loan_status", "positive_class": ["Charged Off", "Late"]} and standards["time_column"] == "issue_d"
    assert standards["pii_columns"] == ["id", "emp_title"] and standards["protected_attributes"] == ["addr_state"]
    assert standards["protected_fields"]["data.positive_class"] == ["Charged Off", "Late"] and standards["protected_fields"]["data.target"] == "loan_status"
    assert experiment["data"]["target"] == "loan_status" and experiment["data"]["positive_class"] == ["Charged Off", "Late"]
    text = (workspace / STANDARDS).read_text()
    assert "# experiment.yaml fields fixed by governance" in text and "# column to predict" in text  # comments kept
    assert repo.text("status", "--porcelain") == ""  # the checked-out main followed
    hook = subprocess.run(["git", "-c", "user.name=Olga", "-c", "user.email=o@bank.example", "commit", "-q", "--allow-empty", "-m", "next"], cwd=workspace, env=GIT_ENV, capture_output=True, text=True, check=False)
    assert hook.returncode == 0, hook.stderr  # the workspace pre-commit hook accepts the pair as committed
    config = build_ports(settings).standards.policy_config()  # acknowledged: calls are served
    assert config["acknowledgement"]["acknowledged"]["via"] == "set" and config["acknowledgement"]["acknowledged"]["principal"] == "olga"


def test_a_single_positive_value_stays_a_scalar_and_integers_stay_numbers(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert set_standards(workspace, "--target", "bad_loan", "--positive-class", "1") == 0
    assert committed(workspace, STANDARDS)["label"] == {"target": "bad_loan", "positive_class": 1}
    assert set_standards(workspace, "--target", "bad_loan", "--positive-class", "1") == 0  # nothing to change: no commit
    assert GitRepo(workspace).text("rev-list", "--count", "main") == "2"


def test_protected_alone_records_that_the_data_holds_no_protected_attribute(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert set_standards(workspace, "--protected") == 0
    assert committed(workspace, STANDARDS)["protected_attributes"] == []


def test_set_commits_main_while_an_agent_branch_is_checked_out(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = GitRepo(workspace)
    repo.run("checkout", "-q", "-b", "agent/work")
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert set_standards(workspace, "--target", "bad_loan") == 0
    assert committed(workspace, STANDARDS)["label"]["target"] == "bad_loan" and committed(workspace, STANDARDS, "agent/work")["label"]["target"] == "default"
    assert repo.current_branch() == "agent/work" and repo.text("status", "--porcelain") == ""


def test_set_without_a_token_writes_nothing(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = GitRepo(workspace).head()
    assert set_standards(workspace, *LENDING) == 2
    assert "credential" in capsys.readouterr().err and GitRepo(workspace).head() == before


@pytest.mark.parametrize(("args", "says"), [(["--target", "id", "--pii", "id"], "also listed"), ([], "nothing to set"), (["--positive-class", "1", "1"], "repeat")])
def test_set_refuses_bad_choices_before_writing(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], says: str) -> None:
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    before = GitRepo(workspace).head()
    assert set_standards(workspace, *args) == 2
    assert says in capsys.readouterr().err and GitRepo(workspace).head() == before


def test_set_refuses_while_unacknowledged_changes_are_pending(workspace: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = workspace / STANDARDS
    path.write_text(path.read_text().replace("min_primary_metric: 0.70", "min_primary_metric: 0.10"))
    GitRepo(workspace).commit_paths([STANDARDS], "looser floor")
    before = GitRepo(workspace).head()
    use_token(monkeypatch, settings.state_dir, "olga", "operator")
    assert set_standards(workspace, "--target", "bad_loan") == 2
    captured = capsys.readouterr()
    assert "gates.min_primary_metric: 0.7 -> 0.1" in captured.out and "mlgate standards accept" in captured.err and GitRepo(workspace).head() == before


def test_status_reports_the_acknowledgement_init_recorded(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["standards", "status", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "audit seq 0" in out and "via init" in out and "are acknowledged" in out
    record = json.loads((load_settings(workspace).audit_path).read_text().splitlines()[0])
    assert record["kind"] == "standards_acknowledged" and record["role"] == "operator" and "credential" not in record


def _at_the_prompt(workspace: Path, token: str, keys: bytes | None) -> tuple[int, str]:
    """Runs `standards set` (no --yes) on a real terminal; once the confirmation prompt shows, types
    `keys` (None: sends SIGINT, as Ctrl-C does). Returns (exit status, everything the terminal showed)."""
    import select  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    master, slave = os.openpty()
    env = {**GIT_ENV, "MLGATE_TOKEN": token}
    command = [sys.executable, "-m", "server.cli", "standards", "set", "--workspace", str(workspace), *LENDING]
    # SIGINT back to its default in the child: a test run started in the background ignores it
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    shown, deadline, sent = b"", time.monotonic() + 120, False
    while time.monotonic() < deadline:
        if not sent and b"[y/N]" in shown:
            process.send_signal(signal.SIGINT) if keys is None else os.write(master, keys)
            sent = True
        ready, _, _ = select.select([master], [], [], 1)
        try:
            chunk = os.read(master, 4096) if ready else b""
        except OSError:  # the child closed the terminal
            break
        if ready and not chunk:
            break
        shown += chunk
    os.close(master)
    return process.wait(timeout=60), shown.decode(errors="replace")


@pytest.mark.parametrize(("keys", "status"), [(None, 130), (b"\x04", 1)], ids=["ctrl-c", "ctrl-d"])
def test_ctrl_c_or_ctrl_d_at_the_confirmation_prompt_commits_nothing_and_prints_no_traceback(workspace: Path, settings: Settings, keys: bytes | None, status: int) -> None:
    token = issue(settings.state_dir, "olga", "operator")
    head = GitRepo(workspace).head()
    code, shown = _at_the_prompt(workspace, token, keys)
    assert code == status and "Traceback" not in shown, shown
    assert ("mlgate: interrupted" if keys is None else "not confirmed; nothing was written") in shown
    assert GitRepo(workspace).head() == head
