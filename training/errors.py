"""Errors raised by the training child, and how any exception becomes a short report.

The child reports the exception's type, the phase it failed in, a code for failures raised by
training/ itself and the last features.py line of the traceback; the server checks each against a
fixed list and words the agent's message itself. The free-text message stays in the run directory
for the operator: a hostile features.py can raise a TrainingError carrying rows of data.
"""

from __future__ import annotations

import errno
import traceback
from pathlib import Path

from training.contract import ERROR_CODES, MAX_MESSAGE_CHARS, Phase


class PhaseLog:
    """Where the child is, so a failure can say in which phase it happened."""

    def __init__(self) -> None:
        self.name: Phase = "start"

    def enter(self, name: Phase) -> None:
        self.name = name


class TrainingError(Exception):
    """A failure raised by training/; `code` (training.contract.ErrorCode) says what it was about."""

    code = "training_failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class SpecError(TrainingError):
    """inputs/spec.json is missing or invalid, or the input rows do not match it."""

    code = "spec_invalid"


class FeatureError(TrainingError):
    """build_features is missing, failed its output checks, or produced unusable columns."""

    code = "features_unloadable"


class DeviceError(TrainingError):
    """The requested device is not usable inside the sandbox."""

    code = "device_unavailable"


def error_code(exc: BaseException) -> str | None:
    """The code of a TrainingError (None for any other exception or an unknown code)."""
    code = getattr(exc, "code", None) if isinstance(exc, TrainingError) else None
    return code if code in ERROR_CODES else None


def features_line(exc: BaseException, features_path: Path) -> int | None:
    """The line of features.py nearest the raise in the traceback, if features.py is in it."""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = [frame.lineno for frame in frames if Path(frame.filename).resolve() == features_path and frame.lineno]
    return lines[-1] if lines else None


def error_type(exc: BaseException) -> str:
    """The exception's type name, or a LIMIT_ERROR_TYPES name when a sandbox limit was hit."""
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "allocate memory" in text or "out of memory" in text:
        return "MemoryError"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "FileSizeLimitError"
    if isinstance(exc, BlockingIOError) or "can't start new thread" in text:
        return "ProcessLimitError"
    return type(exc).__name__


def error_message(exc: BaseException, features_path: Path) -> str:
    """The child's short text for the operator's log; names no data values unless features.py put them there."""
    if isinstance(exc, TrainingError):
        return str(exc)[:MAX_MESSAGE_CHARS]
    frames = traceback.extract_tb(exc.__traceback__)
    text = f"{error_type(exc)} raised"
    if frames:
        text += f" in {Path(frames[-1].filename).name} line {frames[-1].lineno}"
    line = features_line(exc, features_path)
    if line is not None:
        text += f" (features.py line {line})"
    return text[:MAX_MESSAGE_CHARS]
