"""The seccomp filter of sandboxed children: no file locks, leases or change notifications, through
which two children running side by side could pass labels (server/sandbox_seccomp.py). Real bwrap
children; each probe raises inside the child when the call it tries succeeds."""

from __future__ import annotations

import struct

import pytest

from server.sandbox_seccomp import ABIS, filter_program
from tests.server.test_sandbox import LIMITS, assert_nothing_left, bwrap, launcher, probe  # noqa: F401 - fixtures
from tests.training.rundirs import write_run_dir

# Each probe ends with a statement that raises only when the call went through.
PROBES = {
    "flock": "import fcntl\nfcntl.flock(open('/usr/bin/env', 'rb'), fcntl.LOCK_SH | fcntl.LOCK_NB)\nraise SystemExit('flock granted')",
    "posix_lock": "import fcntl\nfcntl.lockf(open('/tmp/x', 'wb'), fcntl.LOCK_EX | fcntl.LOCK_NB)\nraise SystemExit('lockf granted')",
    "ofd_lock": "import fcntl, struct\nfcntl.fcntl(open('/usr/bin/env', 'rb'), 37, struct.pack('hhqqi', 0, 0, 0, 0, 0))\nraise SystemExit('OFD lock granted')",
    "dnotify": "import fcntl\nfcntl.fcntl(os.open('/usr/share', os.O_RDONLY), fcntl.F_NOTIFY, fcntl.DN_ACCESS)\nraise SystemExit('F_NOTIFY granted')",
    "inotify": "import ctypes\nif ctypes.CDLL(None, use_errno=True).inotify_init1(0) >= 0:\n    raise SystemExit('inotify granted')\nraise OSError(ctypes.get_errno(), 'inotify refused')",
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(PROBES))
async def test_file_locks_and_change_notifications_are_refused_inside_the_sandbox(launcher, tmp_path, name):
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe(PROBES[name])))
    assert result.reason == "child_error" and result.result.error_type in {"OSError", "PermissionError", "BlockingIOError"}, (result.reason, result.result)
    assert_nothing_left(result)


@pytest.mark.anyio
async def test_a_plain_run_still_trains_under_the_filter(launcher, tmp_path):
    result = await launcher.run(write_run_dir(tmp_path / "run", features_source=probe("open('/usr/bin/env', 'rb').read(16)")))
    assert result.ok, (result.reason, result.result)


@pytest.mark.parametrize("machine", sorted(ABIS))
def test_the_filter_is_whole_instructions_and_allows_by_default(machine):
    program = filter_program(machine)
    assert program and len(program) % 8 == 0
    instructions = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert instructions[0] == (0x20, 0, 0, 4) and (0x06, 0, 0, 0x7FFF0000) in instructions


def test_an_unknown_machine_gets_no_filter():
    assert filter_program("sparc64") is None
