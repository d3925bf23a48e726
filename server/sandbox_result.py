"""How a sandboxed training run ended: SandboxResult and the pure classification behind it."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from server.sandbox_io import read_output_bytes
from server.sandbox_vocabulary import PHASE_TEXT, child_error_text
from tools.errors import SandboxFailed
from training.contract import LIMIT_ERROR_TYPES, RESULT_FILE, ChildResult, ErrorResult, SuccessResult

MAX_RESULT_BYTES = 8 * 2**20
Mode = Literal["bwrap", "unconfined", "unavailable"]
_RESULT = TypeAdapter(ChildResult)


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended. `reason` is "ok" or the failure kind; `detail` is written by the server for
    the agent from fixed words (server.sandbox_vocabulary), never from the child's text."""

    ok: bool
    reason: str
    detail: str
    mode: Mode
    duration_s: float
    exit_code: int | None = None
    signal: int | None = None
    result: SuccessResult | ErrorResult | None = None
    progress_events: int = 0
    progress_rejected: int = 0  # progress lines the child wrote that the server did not pass on
    orphans_killed: int = 0
    process_group: int | None = None  # with pid_namespace: how to prove no process of the run is left
    pid_namespace: int | None = None
    # The stage the run ended in: "features" when that stage failed (the fit stage never started).
    stage: Literal["features", "fit"] = "fit"
    # The child's stderr (last 4 KiB): untrusted and may hold data; for operators' logs only.
    stderr_tail: str = field(default="", repr=False)

    def raise_for_failure(self) -> None:
        """Raises SandboxFailed (rule sandbox.<reason>) unless the run succeeded."""
        if not self.ok:
            raise SandboxFailed(self.detail, remediation_for(self.reason, self.result), rule_id=f"sandbox.{self.reason}")


REMEDIATIONS = {
    "timeout": "Make the run cheaper (fewer epochs/rounds, smaller model) or ask an operator to raise the limit.",
    "memory_limit": "Reduce memory use in src/features.py or the model size; the address-space cap is configured.",
    "cpu_limit": "Reduce the work per run; the CPU-seconds cap is configured by the operator.",
    "file_size_limit": "Write less: the child may not create files larger than the configured cap, nor more than it in all (outputs/, or built/ for src/features.py).",
    "process_limit": "Do not start processes or many threads from src/features.py.",
    "child_error": "Fix the error in src/features.py or the hyperparameters, then run again.",
    "unsafe_output": "The child may only write regular files and directories where it writes (built/ for src/features.py, outputs/).",
    "invalid_output": "The child must write result.json and predictions.parquet; check src/features.py.",
    "killed": "The child was killed by a signal (often the kernel's out-of-memory killer): use less memory.",
    "crashed": "The child exited abnormally; check src/features.py for native crashes or sys.exit calls.",
    "sandbox_error": "The sandbox could not start; an operator should check bubblewrap on this host.",
}


# The usual KeyError in build_features: a column it is never given (the message, which would name
# it, is the child's text and is not shown).
MISSING_COLUMN = (
    "build_features gets the feature columns only: never the label, the time column, PII columns or, unless an "
    "approved override allows them, protected attributes. run_experiment with dry_run: true lists them (feature_columns); "
    "fix src/features.py to use only those, then run again."
)


def remediation_for(reason: str, result: SuccessResult | ErrorResult | None) -> str:
    if reason == "child_error" and isinstance(result, ErrorResult) and (result.phase, result.error_type) == ("build_features", "KeyError"):
        return MISSING_COLUMN
    return REMEDIATIONS.get(reason, "")


def exit_signal(returncode: int | None, mode: Mode) -> int | None:
    """bwrap reports a child killed by signal N as exit status 128 + N; Popen reports -N."""
    if returncode is None:
        return None
    if mode == "bwrap":
        return returncode - 128 if 128 < returncode < 160 else None
    return -returncode if returncode < 0 else None


def classify(
    *, timed_out: bool, timeout_s: float, exit_code: int | None, sig: int | None,
    result: SuccessResult | ErrorResult | None, unsafe: list[str], stderr_tail: str, features_lines: int = 0,
    overflow: bool = False,
) -> tuple[str, str]:
    """(reason, detail) for a finished run; pure, so every branch is tested by a table. The detail
    names no path, message or value the child chose: only counts and checked fields. `overflow`:
    its writable directory (outputs/, or built/) took more disk than the file-size limit."""
    if timed_out:
        return "timeout", f"the training child ran past the wall-clock limit of {timeout_s:g} s and was killed"
    if overflow:
        return "file_size_limit", "the training child wrote more than the file-size limit into its writable directory in all and was stopped"
    if unsafe:
        return "unsafe_output", f"the child left {len(unsafe)} links or special files in its writable directory"
    if isinstance(result, ErrorResult):
        return _child_error(result, features_lines)
    if sig is not None:
        return _signal_failure(sig)
    if exit_code == 0 and isinstance(result, SuccessResult):
        return "ok", "training finished"
    if exit_code != 0 and "bwrap:" in stderr_tail:
        return "sandbox_error", "bubblewrap failed to set up the sandbox"
    if exit_code != 0:
        return "crashed", f"the training child exited with status {exit_code} without a result"
    return "invalid_output", "the training child exited without a valid result.json"


def _child_error(result: ErrorResult, features_lines: int) -> tuple[str, str]:
    limit = LIMIT_ERROR_TYPES.get(result.error_type)
    if limit:
        return f"{limit}_limit", f"the training child hit the sandbox {limit.replace('_', ' ')} limit while {PHASE_TEXT[result.phase]}"
    return "child_error", child_error_text(result, features_lines)


def _signal_failure(sig: int) -> tuple[str, str]:
    if sig == signal.SIGXCPU:
        return "cpu_limit", "the training child used up its CPU-seconds limit and was killed"
    if sig == signal.SIGXFSZ:
        return "file_size_limit", "the training child wrote past the file-size limit and was killed"
    if sig == signal.SIGKILL:
        return "killed", "the training child was killed by SIGKILL"
    return "crashed", f"the training child died from signal {signal.Signals(sig).name if sig in signal.valid_signals() else sig}"


def read_result(outputs: Path) -> SuccessResult | ErrorResult | None:
    """result.json validated against the contract; None when missing, unsafe or invalid."""
    try:
        return _RESULT.validate_json(read_output_bytes(outputs / RESULT_FILE, MAX_RESULT_BYTES))
    except (OSError, ValueError, ValidationError):
        return None
