import os
import stat
from pathlib import Path

import pytest

from server.files import TooLarge, locked, open_regular, open_to_others, private_dir, private_file, read_at_most, read_regular, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temp_behind(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / ".lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        with locked(tmp_path / ".lock"):
            pass


def test_a_bounded_read_stops_one_byte_past_its_limit(tmp_path: Path) -> None:
    (tmp_path / "grown.bin").write_bytes(b"0123456789")
    with open_regular(tmp_path / "grown.bin") as fd:
        assert read_at_most(fd, 4) == b"01234"
    with open_regular(tmp_path / "grown.bin") as fd:
        assert read_at_most(fd, 10) == b"0123456789"


def test_read_regular_reads_a_file_within_its_cap_and_refuses_a_larger_one_by_its_size(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"{}")
    assert read_regular(target, 2) == b"{}"
    with target.open("r+b") as handle:
        handle.truncate(1 << 40)  # sparse: reading it whole would take hours
    with pytest.raises(TooLarge) as refused:
        read_regular(target, 1 << 20, "state.max_bytes")
    assert refused.value.strerror == f"state.json holds {1 << 40} bytes, over the state.max_bytes cap ({1 << 20})"


def test_a_new_state_directory_and_its_tracking_store_are_private_to_their_owner(workspace: Path) -> None:
    from server.ports import build_ports  # noqa: PLC0415
    from server.settings import load_settings  # noqa: PLC0415

    old_umask = os.umask(0o022)
    try:
        settings = load_settings(workspace, transport="memory")
        ports = build_ports(settings)
        ports.tracking.get_or_create_experiment("modes")
        ports.audit.close()
    finally:
        os.umask(old_umask)
    modes = {name: stat.S_IMODE((settings.state_dir / name).stat().st_mode) for name in (".", "mlflow.db", "standards_pin.json", "audit.jsonl")}
    assert modes == {".": 0o700, "mlflow.db": 0o600, "standards_pin.json": 0o600, "audit.jsonl": 0o600}


def test_an_existing_directory_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    shared = tmp_path / "state"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)
    assert private_dir(shared) == shared and stat.S_IMODE(shared.stat().st_mode) == 0o750


@pytest.mark.parametrize(("mode", "open_mode"), [(0o755, 0o755), (0o701, 0o701), (0o750, None), (0o700, None)])
def test_a_directory_is_open_to_others_when_users_outside_its_group_may_enter_or_list_it(tmp_path: Path, mode: int, open_mode: int | None) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, mode)
    assert open_to_others(state) == open_mode
    assert open_to_others(tmp_path / "missing") is None


def test_a_private_file_is_created_empty_once_and_never_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "store.db"
    private_file(target)
    target.write_bytes(b"kept")
    private_file(target)
    assert target.read_bytes() == b"kept" and stat.S_IMODE(target.stat().st_mode) == 0o600
    (tmp_path / "link.db").symlink_to(tmp_path / "elsewhere.db")
    private_file(tmp_path / "link.db")  # exists (as a link): left alone, nothing created behind it
    assert not (tmp_path / "elsewhere.db").exists()
