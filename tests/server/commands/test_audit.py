"""`mlgate audit verify|tail` in-process through server.cli.main, and once as a real process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from server.audit import AuditChain
from server.cli import main
from server.settings import load_settings
from server.workspace import init_workspace
from tools.errors import IntegrityError
from tests.server.audit.helpers import build_chain, lines, rewrite

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def audited(tmp_path: Path) -> Path:
    """A workspace mlgate init made whose state dir holds only a closed chain of 5 records."""
    root = init_workspace(tmp_path / "ws")
    shutil.rmtree(load_settings(root).state_dir)
    build_chain(load_settings(root).audit_path, 5)
    return root


def _audit_path(root: Path) -> Path:
    return load_settings(root).audit_path


def test_verify_exits_0_with_a_one_line_summary_for_an_intact_chain(audited: Path, capsys) -> None:
    assert main(["audit", "verify", "--workspace", str(audited)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [out[0]] and out[0].startswith("audit chain intact: 5 records, head seq 4")


def test_verify_defaults_to_the_current_directory(audited: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(audited)
    assert main(["audit", "verify"]) == 0
    assert "5 records" in capsys.readouterr().out


def test_verify_of_a_workspace_without_records_exits_0(tmp_path: Path, capsys) -> None:
    root = init_workspace(tmp_path / "ws")
    shutil.rmtree(load_settings(root).state_dir)
    assert main(["audit", "verify", "--workspace", str(root)]) == 0
    assert capsys.readouterr().out.strip() == "audit chain intact: no records yet"


@pytest.mark.parametrize("action", [["verify"], ["tail"], ["search", "--denied"]])
def test_a_directory_mlgate_init_did_not_make_is_refused_not_reported_intact(tmp_path: Path, capsys, action: list[str]) -> None:
    """An auditor's mistyped --workspace must not read as a verified chain."""
    assert main(["audit", *action, "--workspace", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert "is not an mlgate workspace" in captured.err and "intact" not in captured.out + captured.err
    assert not (tmp_path / "nope").exists()


def _delete_line(path: Path, index: int) -> None:
    content = lines(path)
    del content[index]
    rewrite(path, content)


def _edit(path: Path) -> None:
    rewrite(path, [line.replace(b'"n":1', b'"n":8') for line in lines(path)])


def _swap(path: Path) -> None:
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    rewrite(path, content)


def _truncate(path: Path) -> None:
    rewrite(path, lines(path)[:2])


def _tear(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b'{"kind":"outc')


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit, "edited at line 2 (seq 1)"),
        (lambda p: _delete_line(p, 1), "deleted at line 2 (seq 2)"),
        (_swap, "reordered at line 3 (seq 3)"),
        (_truncate, "truncated at line 3 (seq 2)"),
        (_tear, "torn_tail at line 6 (seq 5)"),
    ],
    ids=["edit", "delete", "reorder", "truncate", "torn-tail"],
)
def test_verify_exits_1_and_names_the_first_bad_record(audited: Path, capsys, tamper, expected: str) -> None:
    tamper(_audit_path(audited))
    assert main(["audit", "verify", "--workspace", str(audited)]) == 1
    assert capsys.readouterr().out.startswith(f"audit chain BROKEN: {expected}: ")


def test_tail_prints_the_last_records_as_json_lines(audited: Path, capsys) -> None:
    assert main(["audit", "tail", "-n", "2", "--workspace", str(audited)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in records] == [3, 4] and records[1]["n"] == 4


def test_tail_refuses_a_count_below_one(audited: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["audit", "tail", "-n", "0", "--workspace", str(audited)])
    assert caught.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_real_mlgate_process_reports_a_deleted_record_with_exit_1(audited: Path) -> None:
    _delete_line(_audit_path(audited), 2)
    done = subprocess.run(
        ["uv", "run", "--frozen", "mlgate", "audit", "verify", "--workspace", str(audited)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("audit chain BROKEN: deleted at line 3 (seq 3)")


def test_verify_after_a_restart_recovered_a_torn_tail_exits_0_and_says_so(audited: Path, capsys) -> None:
    _tear(_audit_path(audited))
    AuditChain(_audit_path(audited)).close()
    assert main(["audit", "verify", "--workspace", str(audited)]) == 0
    assert "1 recovered torn tail(s) at seq 5" in capsys.readouterr().out


def test_search_prints_the_matching_records_and_a_count_on_stderr(audited: Path, capsys) -> None:
    assert main(["audit", "search", "--workspace", str(audited), "--kind", "decision", "--where", "n=3"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["seq"] for line in captured.out.splitlines()] == [3]
    assert captured.err.startswith("1 of 5 records matched; audit chain intact: 5 records")


def test_search_of_a_damaged_chain_prints_no_record_and_exits_1(audited: Path, capsys) -> None:
    _edit(_audit_path(audited))
    assert main(["audit", "search", "--workspace", str(audited), "--tool", "t"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "0 of 1 records matched; audit chain BROKEN: edited at line 2" in captured.err


@pytest.mark.parametrize(
    ("argument", "message"),
    [(["--since", "last week"], "not an ISO date or time: 'last week'"), (["--where", "run_id"], "expected FIELD=VALUE"),
     (["--since", "0001-01-01T00:00:00+01:00"], "not an ISO date or time"), (["--until", "9999-12-31T23:00:00-05:00"], "not an ISO date or time")],
    ids=["since", "where", "before-year-1-in-utc", "after-year-9999-in-utc"],
)
def test_search_refuses_a_condition_it_cannot_read(audited: Path, capsys, argument: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["audit", "search", "--workspace", str(audited), *argument])
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_search_piped_into_a_reader_that_stops_early_ends_without_a_traceback(tmp_path: Path) -> None:
    root = init_workspace(tmp_path / "ws")
    shutil.rmtree(load_settings(root).state_dir)
    build_chain(load_settings(root).audit_path, 3000, fsync_every=3000)  # far more than a pipe holds
    command = f"uv run --frozen mlgate audit search --workspace {root} | head -n 1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and json.loads(done.stdout)["seq"] == 0
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_a_line_nested_past_the_recursion_limit_is_reported_by_every_command_not_a_traceback(audited: Path, capsys) -> None:
    """200 KB of `[`: well under the longest record, but deeper than the JSON parser recurses."""
    with _audit_path(audited).open("ab") as chain:
        chain.write(b"[" * 200_000 + b"\n")
    assert main(["audit", "verify", "--workspace", str(audited)]) == 1
    assert "edited at line 6" in capsys.readouterr().out
    assert main(["audit", "tail", "--workspace", str(audited)]) == 0
    assert '"unreadable":true' in capsys.readouterr().out.splitlines()[-1]
    assert main(["audit", "search", "--workspace", str(audited)]) == 1
    assert "audit chain BROKEN" in capsys.readouterr().err
    with pytest.raises(IntegrityError):
        AuditChain(_audit_path(audited))
