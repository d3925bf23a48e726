"""Errors raised by the training child, and how any exception becomes a short, data-free report.

The message of a TrainingError is written by training/ itself and names columns or parameters,
never values. Any other exception (from features.py or a library) may carry row values in its
text, so only its type and where it was raised are reported.
"""

from __future__ import annotations

import errno
import traceback
from pathlib import Path

from training.contract import MAX_MESSAGE_CHARS



class TrainingError(Exception):
    """A failure whose message is safe to hand to the server and the agent."""


class SpecError(TrainingError):
    """inputs/spec.json is missing or invalid."""


class FeatureError(TrainingError):
    """build_features is missing, failed its output checks, or produced unusable columns."""


class DeviceError(TrainingError):
    """The requested device is not usable inside the sandbox."""


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
    if isinstance(exc, TrainingError):
        return str(exc)[:MAX_MESSAGE_CHARS]
    frames = traceback.extract_tb(exc.__traceback__)
    text = f"{error_type(exc)} raised"
    if frames:
        text += f" in {Path(frames[-1].filename).name} line {frames[-1].lineno}"
    user_lines = [frame.lineno for frame in frames if Path(frame.filename).resolve() == features_path]
    if user_lines:
        text += f" (features.py line {user_lines[-1]})"
    return text[:MAX_MESSAGE_CHARS]
