"""How the server judges a finished training child from its run directory, whichever executor ran
it (server/executors.py): the local launcher reads outputs/ where the child wrote them, the Ray
executor first pulls a worker's outputs back into the same place. Either way the verdict comes
from the server's own reading of outputs/ (read_result, audit_outputs, vouched), never from what
a worker or the child says about itself.
"""

from __future__ import annotations

import dataclasses
import stat
from dataclasses import dataclass
from pathlib import Path

from server.sandbox_facts import vouched
from server.sandbox_io import RunPaths, audit_outputs, count_lines, stderr_tail, write_operator_log
from server.sandbox_result import Mode, SandboxResult, classify, exit_signal, read_result
from training.contract import BUILT_DIR, PREDICTIONS_FILE, ErrorResult, SuccessResult
from training.spec import RunSpec


@dataclass(frozen=True)
class ChildExit:
    """What is known about the child's end apart from its outputs: how it exited and when."""

    exit_code: int | None
    timed_out: bool
    timeout_s: float
    duration_s: float
    progress_events: int = 0
    progress_rejected: int = 0
    orphans_killed: int = 0
    process_group: int | None = None
    pid_namespace: int | None = None
    # Unsafe entries (links, FIFOs, hard links) seen where the child ran, when outputs/ here is a copy.
    unsafe_elsewhere: tuple[str, ...] = ()
    outputs_overflow: bool = False  # outputs/ took more disk than the file-size limit: the child was stopped


def conclude(mode: Mode, paths: RunPaths, ended: ChildExit, spec: RunSpec | None) -> SandboxResult:
    """The SandboxResult of a finished child, judged from paths.outputs (built/ when the features
    stage failed: paths.written) and paths.logs; success
    facts bounded by vouched(). Pure apart from reading the run directory and, on failure,
    writing the operator log."""
    sig = exit_signal(ended.exit_code, mode)
    result, errors = read_result(paths.outputs), stderr_tail(paths.logs / "child.stderr")
    unsafe = sorted({*audit_outputs(paths.outputs), *ended.unsafe_elsewhere})
    features_stage = paths.written == BUILT_DIR
    if isinstance(result, SuccessResult) and (features_stage or not is_plain_file(paths.outputs / PREDICTIONS_FILE)):
        result = None  # the features stage never finishes a run: a success it reports is forged
    reason, detail = classify(timed_out=ended.timed_out, timeout_s=ended.timeout_s, exit_code=ended.exit_code, sig=sig, overflow=ended.outputs_overflow,
                              result=result, unsafe=unsafe, stderr_tail=errors, features_lines=count_lines(paths.inputs / "features.py"))
    if isinstance(result, ErrorResult) or unsafe:
        write_operator_log(paths.logs, reason, result if isinstance(result, ErrorResult) else None, unsafe)
    outcome = SandboxResult(ok=reason == "ok", reason=reason, detail=detail, mode=mode, duration_s=ended.duration_s,
                            exit_code=ended.exit_code, signal=sig, result=result, progress_events=ended.progress_events,
                            progress_rejected=ended.progress_rejected, orphans_killed=ended.orphans_killed,
                            process_group=ended.process_group, pid_namespace=ended.pid_namespace, stderr_tail=errors,
                            stage="features" if features_stage else "fit")
    if isinstance(outcome.result, SuccessResult):
        outcome = dataclasses.replace(outcome, result=vouched(outcome.result, spec))
    return outcome


def is_plain_file(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1
