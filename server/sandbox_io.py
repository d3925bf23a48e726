"""Host-side helpers of the sandbox launcher: the run directory, reading the child's outputs
without following its links, streaming progress lines, and finding the child's processes.

Everything under outputs/ was written by untrusted code: a file there may be a symlink to a
server secret, a FIFO that blocks a reader, or a hard link. Read it only through these helpers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import ValidationError

from server.sandbox_vocabulary import ProgressGate, ProgressStep
from tools.errors import SandboxFailed
from training.contract import BUILT_DIR, ErrorResult, ProgressEvent

MAX_PROGRESS_LINE_BYTES = 4096
MAX_REJECTED_PROGRESS_LINES = 64
PROGRESS_SLICE_BYTES = 256 * 1024
MAX_OUTPUT_ENTRIES = 10_000
OUTPUTS_CHECK_S = 1.0  # how often the disk outputs/ takes is measured while the child runs
MAX_OUTPUT_DEPTH = 32  # directory levels under outputs/; the training child writes two
STDERR_TAIL_BYTES = 4096
SANDBOX_UID = 65534
OPERATOR_LOG = "child_report.json"
MAX_LOGGED_UNSAFE = 50
logger = logging.getLogger(__name__)


def read_output_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file written by the child; raises OSError for links, FIFOs, devices,
    hard links or files larger than max_bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(f"{path.name} is not a plain regular file")
        if info.st_size > max_bytes:  # a sparse file declares its size without costing the child any disk
            raise OSError(f"{path.name} is larger than {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(f"{path.name} is larger than {max_bytes} bytes")
    return data


def _walk(outputs: Path) -> Iterator[tuple[str, os.stat_result | None, int]]:
    """(relative path, lstat or None, depth) of every entry under outputs/, walked with a stack,
    not recursion (the child may nest directories without bound), and never through a link. None
    stands for an entry that cannot be stat'ed or a directory that cannot be listed; directories
    at MAX_OUTPUT_DEPTH are yielded but not entered."""
    stack = [("", 0)]
    while stack:
        relative, depth = stack.pop()
        try:
            with os.scandir(outputs / relative) as listing:
                for entry in listing:
                    info = _lstat(entry)
                    if info is not None and stat.S_ISDIR(info.st_mode) and depth + 1 < MAX_OUTPUT_DEPTH:
                        stack.append((f"{relative}{entry.name}/", depth + 1))
                    yield f"{relative}{entry.name}", info, depth + 1
        except OSError:
            yield relative.rstrip("/") or ".", None, depth


def _lstat(entry: os.DirEntry) -> os.stat_result | None:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None


def scan_outputs(outputs: Path) -> tuple[list[str], list[str]]:
    """(plain files, unsafe entries) under outputs/ as relative paths. Unsafe: anything but a
    directory or a singly linked regular file, an entry that cannot be listed or stat'ed, a
    directory at MAX_OUTPUT_DEPTH, and past MAX_OUTPUT_ENTRIES entries one more saying so, where
    the walk stops."""
    files: list[str] = []
    unsafe: list[str] = []
    for seen, (relative, info, depth) in enumerate(_walk(outputs), 1):
        if seen > MAX_OUTPUT_ENTRIES:
            return sorted(files), [*sorted(unsafe), f"more than {MAX_OUTPUT_ENTRIES} entries"]
        if info is not None and stat.S_ISDIR(info.st_mode) and depth < MAX_OUTPUT_DEPTH:
            continue
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            files.append(relative)
        else:
            unsafe.append(relative)
    return sorted(files), sorted(unsafe)


def outputs_over_budget(outputs: Path, budget: int) -> bool:
    """Whether outputs/ takes more than `budget` bytes of disk (allocated blocks: a sparse file
    takes none) or holds more than MAX_OUTPUT_ENTRIES entries. outputs/ is on the host's disk with
    no quota, and RLIMIT_FSIZE caps each file, not their number."""
    used = 0
    for seen, (_, info, _) in enumerate(_walk(outputs), 1):
        used += info.st_blocks * 512 if info is not None else 0
        if used > budget or seen > MAX_OUTPUT_ENTRIES:
            return True
    return False


def audit_outputs(outputs: Path) -> list[str]:
    """Relative paths under outputs/ that are not plain directories or singly linked regular files
    (and the other unsafe entries scan_outputs names)."""
    return scan_outputs(outputs)[1]


def remove_tree(path: Path) -> None:
    """Removes a directory tree a child shaped (any depth, any modes) without recursion and without
    following links: each directory's subdirectories are first moved up into a staging directory
    beside it, so no path grows and at most two directories are open at once. Raises OSError when
    something cannot be removed."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.removing-", dir=path.parent))
    os.rename(path, staging / "0")
    top = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        pending, made = ["0"], 1
        while pending:
            made = _empty_into(top, pending.pop(), pending, made)
    finally:
        os.close(top)
    staging.rmdir()


def _empty_into(top: int, name: str, pending: list[str], made: int) -> int:
    """Removes directory `name` of `top`: its files unlinked, its subdirectories moved into `top`
    under fresh numbers (appended to pending). Returns the next free number."""
    os.chmod(name, 0o700, dir_fd=top)  # a mode the child chose (0o000) must not keep it
    directory = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
    try:
        for entry in list(os.scandir(directory)):
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.name, 0o700, dir_fd=directory)  # moving a directory rewrites its ".."
                os.rename(entry.name, str(made), src_dir_fd=directory, dst_dir_fd=top)
                pending.append(str(made))
                made += 1
            else:
                os.unlink(entry.name, dir_fd=directory)
    finally:
        os.close(directory)
    os.rmdir(name, dir_fd=top)
    return made


class OutputsGuard:
    """Measures the disk the child's outputs/ takes, at most every OUTPUTS_CHECK_S, against the
    file-size limit: outputs/ is on the host's disk without a quota, and RLIMIT_FSIZE bounds each
    file, not their number."""

    def __init__(self, outputs: Path, budget: int) -> None:
        self.outputs, self.budget, self.tripped = outputs, budget, False
        self._due = time.monotonic() + OUTPUTS_CHECK_S

    async def check(self) -> bool:
        if time.monotonic() >= self._due:
            self.tripped = await anyio.to_thread.run_sync(self.measure)
            self._due = time.monotonic() + OUTPUTS_CHECK_S
        return self.tripped

    def measure(self) -> bool:
        return outputs_over_budget(self.outputs, self.budget)


class ProgressTail:
    """Reads complete new lines of progress.jsonl as the child appends them and hands on only what
    the gate admits, as server-worded steps."""

    def __init__(self, path: Path, gate: ProgressGate) -> None:
        self._path, self._gate = path, gate
        self._fd: int | None = None
        self._pending = b""
        self.delivered = 0
        self.rejected = 0
        self.consumed_bytes = 0
        self.closed = False

    def read_new(self) -> list[ProgressStep]:
        """Steps from at most PROGRESS_SLICE_BYTES of new text. Runs on the server's event loop, so a
        child flooding the file costs a bounded slice per poll, and past MAX_REJECTED_PROGRESS_LINES
        refused lines the file is not read any more (a well-behaved child writes none)."""
        if self.closed or not self._open():
            return []
        chunk = os.read(self._fd, PROGRESS_SLICE_BYTES)
        self.consumed_bytes += len(chunk)
        lines = (self._pending + chunk).split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_PROGRESS_LINE_BYTES:
            self._pending, self.rejected = b"", self.rejected + 1
        return self._admit(lines)

    def _admit(self, lines: list[bytes]) -> list[ProgressStep]:
        steps = []
        for line in lines:
            if self.rejected > MAX_REJECTED_PROGRESS_LINES:
                self.close()  # a file written to flood the server: never read again
                break
            if line.strip() and (step := self._parse(line)):
                steps.append(step)
        return steps

    def _open(self) -> bool:
        if self._fd is not None:
            return True
        try:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:
            self.closed = True  # a link or something else planted under the name: never read it
            return False
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            self.close()
            return False
        return True

    def _parse(self, line: bytes) -> ProgressStep | None:
        try:
            step = self._gate.admit(ProgressEvent.model_validate_json(line[:MAX_PROGRESS_LINE_BYTES]))
        except ValidationError:
            step = None
        if step is None:
            self.rejected += 1
            return None
        self.delivered += 1
        return step

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.closed = True


@dataclass(frozen=True)
class RunPaths:
    run_dir: Path
    # The directory a stage writes, judged by server/sandbox_outcome.conclude: outputs/ (the fit
    # stage), or built/ when the features stage failed and its own report is what there is to read.
    written: str = "outputs"

    @property
    def inputs(self) -> Path:
        return self.run_dir / "inputs"

    @property
    def outputs(self) -> Path:
        return self.run_dir / self.written

    @property
    def built(self) -> Path:
        return self.run_dir / BUILT_DIR

    def of_failed_features_stage(self) -> RunPaths:
        """These paths with built/ as the directory judged: the fit stage never ran."""
        return dataclasses.replace(self, written=BUILT_DIR)

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def scratch(self) -> Path:
        return self.run_dir / "scratch"


def prepare_run_dir(run_dir: Path, required_inputs: tuple[str, ...], sandbox_owns_outputs: bool,
                    sandbox_uid: int = SANDBOX_UID) -> RunPaths:
    """Check inputs/, create an empty outputs/ and built/ (owned by sandbox_uid when the sandbox drops
    privileges) and logs/; raises SandboxFailed (sandbox.run_dir) when the layout is wrong."""
    paths = RunPaths(Path(run_dir).resolve())
    missing = [name for name in required_inputs if not (paths.inputs / name).is_file()]
    if missing:
        raise SandboxFailed(f"run directory lacks inputs {missing}", "Write every input before launching.",
                            rule_id="sandbox.run_dir")
    for written in (paths.outputs, paths.built):
        written.mkdir(exist_ok=True)
        if any(written.iterdir()):
            raise SandboxFailed(f"{written.name}/ of the run directory is not empty", "Launch each run in a fresh directory.",
                                rule_id="sandbox.run_dir")
    paths.logs.mkdir(exist_ok=True)
    if sandbox_owns_outputs:
        _open_inputs_to_sandbox(paths.inputs)
        for written in (paths.outputs, paths.built):
            os.chown(written, sandbox_uid, sandbox_uid)
    return paths


def _open_inputs_to_sandbox(inputs: Path) -> None:
    """The child reads inputs/ as an unprivileged uid; the files are mounted read-only."""
    inputs.chmod(0o755)
    for path in inputs.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def count_lines(path: Path) -> int:
    """Lines of a server-written input (0 when unreadable): bounds the features.py line a child reports."""
    try:
        return len(path.read_bytes().splitlines())
    except OSError:
        return 0


def write_operator_log(logs: Path, reason: str, error: ErrorResult | None, unsafe: list[str]) -> None:
    """The child's own account of a failure (its message may hold rows of data) goes to logs/ in
    the run directory, for the operator only; the server log names just the file."""
    document = {"reason": reason, "unsafe_outputs": unsafe[:MAX_LOGGED_UNSAFE],
                "child_error": error.model_dump(mode="json") if error is not None else None}
    path = logs / OPERATOR_LOG
    path.write_text(json.dumps(document, indent=2, sort_keys=True))
    logger.warning("training child failed (%s); its own report is in %s", reason, path)


def stderr_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - STDERR_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def proc_stat(pid: int | str) -> tuple[str, int, int, int] | None:
    """(state, process group, session, start ticks) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[2]), int(fields[3]), int(fields[19])


def namespace_of(pid: int | str) -> str | None:
    """`pid:[INODE]` of a process's pid namespace, None when it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def environ_entries(pid: int | str) -> list[bytes]:
    """A process's environment entries (`NAME=value`), [] when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def sandbox_processes(group: int, pid_namespace: int | None, environ_token: bytes | None = None) -> set[int]:
    """Live (non-zombie) processes of a run: in the child's process group or session, in its pid
    namespace (bwrap), or carrying its environment token (unconfined: catches a setsid escape that
    keeps its environment; one that also clears it is not found, unconfined is the weaker mode)."""
    members = set()
    namespace_link = f"pid:[{pid_namespace}]" if pid_namespace else None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        facts = proc_stat(pid)
        if facts is None or facts[0] in "ZX":
            continue
        if (group in facts[1:3] or (namespace_link and namespace_of(pid) == namespace_link)
                or (environ_token and environ_token in environ_entries(pid))):
            members.add(int(pid))
    return members


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def kill_group(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
