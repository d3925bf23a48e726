import os
import stat
from pathlib import Path

import pytest

from server.files import locked, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temp_behind(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_atomic_never_writes_through_a_planted_symlink_temp(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    (tmp_path / "dir").mkdir()
    target = tmp_path / "dir" / "state.json"
    write_atomic(target, b"x")
    assert outside.read_bytes() == b"keep" and target.read_bytes() == b"x"


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        with locked(tmp_path / ".lock"):
            pass
