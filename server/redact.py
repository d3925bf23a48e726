"""Credentials out of the process's log lines and tracebacks (tools/redact.py does the text).

MLflow, urllib3, git and SQLAlchemy may name the URI they failed to reach, userinfo included, in a
log line or an exception message. `install_log_redaction()` makes every LogRecord created in the
process carry redacted text (message, arguments and formatted traceback), and an uncaught
exception's traceback is redacted before it reaches stderr. An mlgate bearer token is replaced
wherever it appears (a client may paste its own into a resource URI, which the SDK logs), and a
message is cut at MAX_LOG_CHARS. Idempotent.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

from tools.redact import redact_text

_installed = False
MAX_LOG_CHARS = 4096


def install_log_redaction() -> None:
    """Redact URIs in every log record and uncaught traceback of this process (once)."""
    global _installed
    if _installed:
        return
    _installed = True
    logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
    sys.excepthook = _redacting_excepthook


def _redacting_factory(factory: Any) -> Any:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        redact_record(record)
        return record

    return make


def redact_record(record: logging.LogRecord) -> None:
    """Replaces the record's message and traceback by their redacted, already formatted text."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is logging's to report, as it is
        return
    record.msg, record.args = _bounded(redact_text(message)), ()
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))


def _bounded(message: str) -> str:
    """A log line of at most MAX_LOG_CHARS: the SDK logs a client's resource URI as it came, so one
    read of a 100 KB URI would otherwise add 100 KB to the log."""
    if len(message) <= MAX_LOG_CHARS:
        return message
    return f"{message[:MAX_LOG_CHARS]}... ({len(message) - MAX_LOG_CHARS} more characters not logged)"


def _redacting_excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    sys.stderr.write(redact_text("".join(traceback.format_exception(kind, value, tb))))
