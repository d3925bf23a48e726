"""Pure provenance hashes recorded on every run (DESIGN §6 Tier 1).

Callers read the bytes (features.py, uv.lock) and pass them in, so every hash here is a function of
its arguments only: a stranger can recompute any of them from the committed files and the logged
config. Canonical JSON = sorted keys, no insignificant whitespace, UTF-8, NaN refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

# Domain separators: the same bytes hashed for two purposes never give the same digest.
FEATURE_PIPELINE_DOMAIN = b"mlgate.feature_pipeline.v1\n"


MAX_PARAM_CHARS = 6000  # MLflow keeps a param value up to this many characters


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, compact separators, no NaN/Infinity.

    Raises TypeError for values JSON cannot represent and ValueError for NaN/Infinity.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def feature_columns_sha256(columns: list[str]) -> str:
    """The hash a run logs of its feature columns (the list itself only when it fits in a param)."""
    return hashlib.sha256(canonical_json(columns).encode()).hexdigest()


def stable_json(value: Any) -> str:
    """Readable deterministic JSON for artifacts: sorted keys, 2-space indent, final newline.

    Raises TypeError / ValueError like canonical_json.
    """
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    """SHA-256 of the canonical JSON of a value (the config hash of a mapping)."""
    return sha256_bytes(canonical_json(value).encode("utf-8"))


def config_hash(config: Mapping[str, Any]) -> str:
    """Hash of a whole experiment config: key order and formatting of the YAML do not matter."""
    return sha256_json(dict(config))


def lockfile_hash(lock_bytes: bytes) -> str:
    """SHA-256 of uv.lock exactly as read (the bytes `uv sync --locked` would use)."""
    return sha256_bytes(lock_bytes)


def feature_pipeline_hash(features_source: bytes, feature_config: Mapping[str, Any]) -> str:
    """SHA-256 over src/features.py bytes and the canonical JSON of the feature config.

    The two parts are length-prefixed, so moving bytes from the source into the config (or back)
    cannot produce the same digest.
    """
    config_bytes = canonical_json(dict(feature_config)).encode("utf-8")
    digest = hashlib.sha256(FEATURE_PIPELINE_DOMAIN)
    for part in (features_source, config_bytes):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# --- the files a run used, against its commit (is the run "dirty"?) ----------------------------

# The workspace files whose bytes a run uses: the feature code copied into the sandbox and the
# configs it reads. A run is clean only if each file it used is byte-identical to the blob at
# its commit; `git status` alone is not trusted (skip-worktree and assume-unchanged hide edits).
FEATURES_PATH = "src/features.py"
RUN_FILES = (FEATURES_PATH, "configs/experiment.yaml", "configs/reasoning.yaml")
RUN_FILES_PARAM = "run_files_sha256"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}\Z")  # a SHA-256 digest as text (file hashes, content hashes)


def run_files_param(used: Mapping[str, str]) -> str:
    """The `run_files_sha256` param: canonical JSON {path: SHA-256 of the bytes the run used}."""
    return canonical_json(dict(used))


def parse_run_files(text: Any) -> dict[str, str] | None:
    """{path: SHA-256} of a `run_files_sha256` param; None when it is missing or malformed (a
    path outside RUN_FILES, a value that is not 64 lowercase hex, no features.py)."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(value, dict) or FEATURES_PATH not in value:
        return None
    if any(path not in RUN_FILES or not isinstance(digest, str) or not SHA256_HEX.match(digest) for path, digest in value.items()):
        return None
    return dict(value)


def differing_files(used: Mapping[str, str], committed: Mapping[str, bytes | None]) -> list[str]:
    """Paths whose used bytes (by SHA-256) are not the blob at the commit; a file missing at the
    commit differs."""
    return sorted(path for path, digest in used.items() if committed.get(path) is None or sha256_bytes(committed[path]) != digest)
