"""Credentials out of URIs (userinfo and secret-looking query parameters) and mlgate bearer tokens
out of any text, wherever text is shown.

A tracking URI such as `postgresql://alice:pw@db/mlflow` or `http://u:pw@host:5000`, a git remote
`https://x-access-token:TOKEN@github.com/o/r.git` or a presigned `...?X-Amz-Signature=...` can reach
an error message, a tag, a log line or an audit record. Every URI found in such text keeps its
scheme, host, path and harmless query parameters; the userinfo and the values of parameters whose
names look like credentials are replaced by `REDACTED`. Pure: no I/O, no configuration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MARK = "REDACTED"
# A URI inside running text: scheme://, then everything up to whitespace, a quote or a bracket.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}://[^\s'\"<>`]+")
# `//userinfo@` of an authority, up to its last '@' (a password may hold an unescaped '@').
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)@")
# Query or fragment parameters: name=value, separated by & or ;.
_PARAM = re.compile(r"([?&;#])([^=&;#\s]+)=([^&;#\s]*)")
# An mlgate bearer token (server/auth.py: "mlgate_" + 43 URL-safe characters) pasted anywhere: a
# client that puts its own token in a resource URI or a tool argument must not have it logged.
_MLGATE_TOKEN = re.compile(r"mlgate_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
_SECRET_NAME = re.compile(r"pass|pwd|token|secret|key|sig|auth|credential|session|cookie|code", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """`uri` with its userinfo and secret-looking query parameter values replaced by REDACTED."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MARK}@", uri, count=1)
    return _PARAM.sub(_param, text)


def _param(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    if value and _SECRET_NAME.search(name):
        return f"{sep}{name}={MARK}"
    return match.group(0)


def redact_text(text: str) -> str:
    """`text` with every URI in it redacted and every mlgate bearer token replaced (cheap when the
    text holds neither '://' nor 'mlgate_')."""
    if "mlgate_" in text:
        text = _MLGATE_TOKEN.sub(f"mlgate_{MARK}", text)
    if "://" not in text:
        return text
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value (mappings, lists, strings) with every URI in its strings redacted.

    Keys are kept as they are; values that are not str, list, tuple or mapping are returned unchanged.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    return value
