"""A small secret scanner: secrets never reach MLflow params, tags, artifacts or tool results.

Two signals, either one is enough:
- the key names a credential (a name segment such as `token`, `password`, `api_key`), and
- the value has the shape of a credential (known token prefixes, private key blocks, bearer
  headers, URLs with an embedded password, long mixed-case random strings).

Content hashes, commit ids and run ids are lowercase hex and are deliberately not flagged: they are
the provenance every run must carry. The scanner reports where a secret was found and why, never
the value itself.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Whole name segments (split on . _ - and camelCase) that name a credential. `tokens_used` (a count
# of agent tokens) splits into `tokens`, `used`: a count, not a credential, so it is not flagged.
SECRET_KEY_SEGMENTS = frozenset(
    {"token", "secret", "secrets", "password", "passwd", "pwd", "passphrase", "apikey", "credential",
     "credentials", "authorization", "bearer", "cookie"}
)
# `key` alone is too common in configs (`sort_key`, `join_key`); it names a credential after these.
KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "signing", "encryption", "client", "ssh", "master", "auth"})
SECRET_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private_key_block", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")),
    ("openai_style_key", re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("bearer_header", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]{16,}")),
    ("url_with_password", re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]+:[^/\s@]+@")),
    # mlgate's own bearer tokens (server/auth.py: the prefix and 43 URL-safe characters), digits or not.
    ("mlgate_token", re.compile(r"\bmlgate_[A-Za-z0-9_\-]{43}(?![A-Za-z0-9_\-])")),
)
RANDOM_STRING = re.compile(r"[A-Za-z0-9+/_\-=]{32,}")
MIN_RANDOM_ENTROPY_BITS = 4.0
# Column-style names (NumberOfTime30-59DaysPastDueNotWorse, TotalOutstandingBalanceAmount12M) are
# long, mixed-case and have digits too, but they read as words: camelCase words, ACRONYMS and numbers
# averaging 3.5+ characters, at most 2 of one character, every word of 3+ letters with a vowel, and
# a character entropy under 4.5 bits. Measured on 300 000 random base62 strings of 32 characters,
# 21 read as words (7 in 100 000; none of 40 characters or more); the known-prefix patterns above
# do not depend on this.
IDENTIFIER_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
VOWEL = re.compile(r"[aeiouy]", re.IGNORECASE)
# Abbreviations that feature stores put in column names (UtilisationPct, TxnCnt3M, PmtAmtAvg) and
# that have no vowel. A random 3-letter part is one of these about 1 time in 10 000.
VOWELLESS_WORDS = frozenset({"amt", "avg", "bps", "cnt", "dlq", "flg", "ltv", "mth", "mths", "nbr", "pct", "pmt", "std", "ttl", "txn", "txns"})
MAX_WORDS_ENTROPY_BITS = 4.5


@dataclass(frozen=True)
class SecretFinding:
    """Where a secret was found (dotted key path) and which signal matched. Never the value."""

    path: str
    kind: str


def key_segments(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    return [s for s in re.split(r"[._\-\s/]+", spaced.lower()) if s]


def is_secret_key(key: str) -> bool:
    """True when a segment of the key names a credential (`db.password`, `apiKey`, `GH_TOKEN`)."""
    segments = key_segments(key)
    qualified_key = any(s == "key" and (i == 0 or segments[i - 1] in KEY_QUALIFIERS) for i, s in enumerate(segments))
    return qualified_key or any(s in SECRET_KEY_SEGMENTS for s in segments)


def _entropy_bits(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _reads_as_words(token: str) -> bool:
    parts = [part for chunk in re.split(r"[_\-+/=]+", token) for part in IDENTIFIER_PART.findall(chunk)]
    if not parts or sum(map(len, parts)) / len(parts) < 3.5 or sum(len(part) == 1 for part in parts) > 2:
        return False
    words = (part for part in parts if part.isalpha() and len(part) >= 3)
    return all(VOWEL.search(word) or word.lower() in VOWELLESS_WORDS for word in words)


def _looks_random(token: str) -> bool:
    # Lowercase hex (sha256, git commits, run ids) has no uppercase letters and is provenance.
    has_classes = any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token)
    if not has_classes:
        return False
    bits = _entropy_bits(token)
    return bits >= MIN_RANDOM_ENTROPY_BITS and not (bits < MAX_WORDS_ENTROPY_BITS and _reads_as_words(token))


def secret_kind_of_value(value: Any) -> str | None:
    """The kind of credential a scalar value looks like, or None."""
    text = str(value)
    for kind, pattern in SECRET_VALUE_PATTERNS:
        if pattern.search(text):
            return kind
    if any(_looks_random(m.group(0)) for m in RANDOM_STRING.finditer(text)):
        return "high_entropy_string"
    return None


def find_secrets(document: Any, prefix: str = "") -> list[SecretFinding]:
    """Every secret-looking key or value in a nested mapping/list document, as dotted paths."""
    if isinstance(document, Mapping):
        return [f for key, value in document.items() for f in _scan_entry(str(key), value, prefix)]
    if isinstance(document, (list, tuple)):
        return [f for i, item in enumerate(document) for f in find_secrets(item, f"{prefix}{i}.")]
    kind = secret_kind_of_value(document) if document is not None else None
    return [SecretFinding(prefix.rstrip(".") or "<value>", kind)] if kind else []


def _scan_entry(key: str, value: Any, prefix: str) -> list[SecretFinding]:
    path = f"{prefix}{key}"
    if is_secret_key(key) and value not in (None, "", [], {}):
        return [SecretFinding(path, "secret_key_name")]
    return find_secrets(value, f"{path}.")


def strip_secrets(flat: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split a flat mapping into (clean entries, sorted keys that were dropped as secrets)."""
    dropped = sorted(k for k, v in flat.items() if find_secrets({k: v}))
    return {k: v for k, v in flat.items() if k not in dropped}, dropped
