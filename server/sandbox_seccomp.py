"""The seccomp filter bwrap loads into every sandboxed child (`--seccomp FD`): no file locks, leases
or change notifications.

Children of one run run side by side (configs/policy.yaml training.parallel_stages), and each sees
the same host files read-only (/usr, the interpreter, the venv). A lock or a change notification
on a shared file is seen by every other child that looks at that file, whatever mount namespace it
is in: the final stage, which trains on every development row, could publish labels as shared
locks on files picked by row id, and a fold could read back the labels of its own validation rows
(measured: 400 of 400), making its validation figures whatever its code wants. Python, numpy,
pandas, pyarrow, scikit-learn, XGBoost and PyTorch's training loop need none of these calls, so the
filter refuses them: flock(2), the lock, lease and notify commands of fcntl(2) (ENOLCK / EPERM),
inotify and fanotify (EPERM). System calls of another ABI (i386 through int 0x80, x32) are refused
with ENOSYS so that they cannot reach the same calls under other numbers. Timing channels (CPU,
page cache) between concurrent children remain; the sealed test set's labels never reach any child.

The program is classic BPF, assembled here (no libseccomp needed): `filter_program(machine)` for
x86_64 and aarch64, None elsewhere (the sandbox then runs without it, as documented).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Sequence

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little endian)
NR, ARCH, ARG1_LOW = 0, 4, 24
LD_ABS, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, ...|BPF_JGE|BPF_K, BPF_RET|BPF_K
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
X32_BIT = 0x40000000

# fcntl commands: F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_SETLEASE, F_GETLEASE, F_NOTIFY
FCNTL_LOCKS = (5, 6, 7, 36, 37, 38, 1024, 1025, 1026)
# machine: (AUDIT_ARCH_*, fcntl, flock, notification syscalls, refuse numbers from this bit up)
ABIS: dict[str, tuple[int, int, int, tuple[int, ...], int | None]] = {
    "x86_64": (0xC000003E, 72, 73, (253, 294, 300), X32_BIT),  # inotify_init, inotify_init1, fanotify_init
    "aarch64": (0xC00000B7, 25, 32, (26, 262), None),  # inotify_init1, fanotify_init
}


def filter_program(machine: str) -> bytes | None:
    """The compiled filter for `machine` (platform.machine()), None when it is not known here."""
    abi = ABIS.get(machine)
    return None if abi is None else _assemble(_program(*abi))


def _program(arch: int, fcntl: int, flock: int, notify: Sequence[int], abi_bit: int | None) -> list[tuple]:
    """(op, k, jump-if-true label, jump-if-false label) or (label,) entries; labels resolved by _assemble."""
    return [
        (LD_ABS, ARCH, None, None), (JEQ, arch, None, "other_abi"),
        (LD_ABS, NR, None, None),
        *([(JGE, abi_bit, "other_abi", None)] if abi_bit else []),
        (JEQ, flock, "no_lock", None),
        *((JEQ, number, "not_permitted", None) for number in notify),
        (JEQ, fcntl, None, "allow"),
        (LD_ABS, ARG1_LOW, None, None),
        *((JEQ, command, "no_lock", None) for command in FCNTL_LOCKS),
        ("allow",), (RET, ALLOW, None, None),
        ("no_lock",), (RET, ERRNO | errno.ENOLCK, None, None),
        ("not_permitted",), (RET, ERRNO | errno.EPERM, None, None),
        ("other_abi",), (RET, ERRNO | errno.ENOSYS, None, None),
    ]


def _assemble(program: list[tuple]) -> bytes:
    """struct sock_filter {u16 code; u8 jt; u8 jf; u32 k} per instruction; a jump's offset counts the
    instructions after it (a None label: fall through to the next one)."""
    instructions = [entry for entry in program if len(entry) == 4]
    labels, position = {}, 0
    for entry in program:
        if len(entry) == 1:
            labels[entry[0]] = position
        else:
            position += 1
    code = b""
    for pc, (op, k, if_true, if_false) in enumerate(instructions):
        jt, jf = (0 if label is None else labels[label] - pc - 1 for label in (if_true, if_false))
        code += struct.pack("<HBBI", op, jt, jf, k)
    return code
