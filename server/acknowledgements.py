"""The acknowledgement pin: the standards and the governance-relevant server configuration that a
human or operator last accepted, vouched by the audit chain.

Committing to main (or editing <state_dir>/server.yaml) needs no approval, so the server does not
trust what it finds there: every call compares

    the standards in force        SHA-256 of configs/project_standards.yaml on the protected ref
    the governed server config    SHA-256 of the canonical JSON of the GOVERNED_SETTINGS
                                  (server/settings.py) as the configuration FILES give them

with the last `standards_acknowledged` record of the audit chain:

    standards_acknowledged   via (init | accept | set), principal, role, credential,
                             protected_ref, commit, standards_sha256, standards_blob (git blob id,
                             for diffs), server_config {dotted setting: value; tracking_uri as its
                             hash}, server_config_sha256, previous {standards_sha256,
                             server_config_sha256} | null

A record counts only when it is canonical with a matching hash and was made by a human or operator
whose credential the chain vouches for (server/ledger.py); the one exception is the first such
record of a chain, written by `mlgate init`. `<state_dir>/standards_pin.json` names the record the
server holds to (seq, hash, both hashes); a pin that is not the chain's latest vouched record
grants nothing. The environment of the launched server (MLGATE_* variables) is the launcher's
choice and is not pinned.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies import Principal
from policies.provenance import STANDARDS_PATH
from server.audit.records import canonical, parse_line
from server.audit.tail import ChainTail
from server.files import write_atomic
from server.ledger import APPROVER_ROLES, ChainLedger, ChainWriter, actor
from server.settings import GOVERNED_SETTINGS, Settings, load_file_settings
from tools.errors import IntegrityError

ACK_KIND = "standards_acknowledged"
PIN_FILE = "standards_pin.json"
VIAS = ("init", "accept", "set")
_MARKER = f'"kind":"{ACK_KIND}"'.encode()
# Settings that may carry credentials (user:password@host): the chain keeps their hash only.
HASHED_SETTINGS = ("tracking_uri", "executor.ray.address")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys; lists and scalars are leaves."""
    if not isinstance(value, Mapping) or (prefix and not value):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


# Blocks added to the governed settings after workspaces were first pinned: left at their defaults
# they are not part of the pin, so upgrading mlgate does not invalidate existing acknowledgements;
# any value other than the default is pinned (and reported as drift until acknowledged).
ELIDED_AT_DEFAULT = ("executor", "tracking")


def _elide_defaults(flat: dict[str, Any]) -> dict[str, Any]:
    defaults = flatten(Settings.model_construct().model_dump(mode="json", include=set(ELIDED_AT_DEFAULT)))
    return {key: value for key, value in flat.items() if key not in defaults or defaults[key] != value}


def governed_config(settings: Settings) -> dict[str, Any]:
    """{dotted setting: JSON value} of the governed settings; credential-bearing ones hashed."""
    flat = _elide_defaults(flatten(settings.model_dump(mode="json", include=set(GOVERNED_SETTINGS))))
    for key in HASHED_SETTINGS:
        if flat.get(key) is not None:
            flat[key] = "sha256:" + hashlib.sha256(str(flat[key]).encode()).hexdigest()
    return flat


def sha256_of(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(dict(config))).hexdigest()


def blob_id(data: bytes) -> str:
    """The git blob id of `data` (what `git rev-parse REF:PATH` prints), computed without git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Observed:
    """What is in force now: committed standards bytes and the governed server config."""

    protected_ref: str
    standards: bytes
    server_config: dict[str, Any]

    @cached_property
    def standards_sha256(self) -> str:
        return hashlib.sha256(self.standards).hexdigest()

    @cached_property
    def server_config_sha256(self) -> str:
        return sha256_of(self.server_config)


def file_config(workspace: Path, state_dir: Path) -> dict[str, Any]:
    """The governed config the files give. Raises ValueError when they do not load or validate."""
    try:
        return governed_config(load_file_settings(workspace, state_dir))
    except (ValidationError, yaml.YAMLError, OSError) as exc:
        raise ValueError(f"{state_dir / 'server.yaml'} does not load or validate ({type(exc).__name__})") from exc


# --- the chain's vouched acknowledgements ------------------------------------------------------


class AcknowledgementLedger:
    """The latest vouched `standards_acknowledged` record of one audit chain, read incrementally
    (the chain only grows). Thread-safe."""

    def __init__(self, audit_path: Path | str) -> None:
        self.path = Path(audit_path)
        self._credentials = ChainLedger(self.path)
        self._mutex = threading.Lock()
        self._tail = ChainTail(self.path)
        self._latest: dict[str, Any] | None = None
        self._seen_any = False

    def latest(self) -> dict[str, Any] | None:
        with self._mutex:
            for restarted, data in self._tail.pieces():
                if restarted:
                    self._latest, self._seen_any = None, False
                for line in data.splitlines(keepends=True):
                    if _MARKER in line:
                        self._consider(line)
            return None if self._latest is None else dict(self._latest)

    def _consider(self, line: bytes) -> None:
        record, problem = parse_line(line)
        if problem is not None or record is None or record.get("kind") != ACK_KIND:
            return
        first, self._seen_any = not self._seen_any, True
        if self._vouched(record, first):
            self._latest = record

    def _vouched(self, record: Mapping[str, Any], first: bool) -> bool:
        """Made by a human/operator whose credential the chain vouches for; without a credential
        only the chain's first acknowledgement, which `mlgate init` writes for its operator."""
        if record.get("via") not in VIAS or record.get("role") not in APPROVER_ROLES:
            return False
        if not all(isinstance(record.get(k), str) for k in ("standards_sha256", "server_config_sha256", "principal")):
            return False
        if record.get("via") == "init":
            return first and record.get("role") == "operator" and "credential" not in record
        return self._credentials.credential_valid_at(record.get("credential"), record["principal"], record["role"], record["seq"])


# --- the pin file ------------------------------------------------------------------------------


def pin_of(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("seq", "hash", "standards_sha256", "server_config_sha256")}


def read_pin(state_dir: Path) -> dict[str, Any] | None:
    """The pin file's contents, or None when it is missing or not a JSON object."""
    try:
        pin = json.loads((state_dir / PIN_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return pin if isinstance(pin, dict) else None


def write_pin(state_dir: Path, record: Mapping[str, Any]) -> None:
    write_atomic(state_dir / PIN_FILE, json.dumps(pin_of(record), sort_keys=True, indent=2).encode() + b"\n", mode=0o600)


# --- recording an acknowledgement --------------------------------------------------------------


def acknowledgement_record(observed: Observed, previous: Mapping[str, Any] | None, principal: Any, via: str, commit: str | None) -> dict[str, Any]:
    """The body of a standards_acknowledged record for `observed` (chain fields added on append)."""
    return {
        "kind": ACK_KIND,
        "via": via,
        **actor(principal),
        "protected_ref": observed.protected_ref,
        "commit": commit,
        "standards_sha256": observed.standards_sha256,
        "standards_blob": blob_id(observed.standards),
        "server_config": observed.server_config,
        "server_config_sha256": observed.server_config_sha256,
        "previous": None if previous is None else {k: previous.get(k) for k in ("standards_sha256", "server_config_sha256")},
    }


def record_acknowledgement(settings: Settings, observed: Observed, principal: Any, *, via: str, commit: str | None, audit: Any = None) -> dict[str, Any]:
    """Chain the acknowledgement of `observed` by `principal` and pin it. Returns the chained record.

    Raises IntegrityError when the chain cannot record (nothing is pinned then)."""
    previous = AcknowledgementLedger(settings.audit_path).latest()
    written = dict(ChainWriter(settings.audit_path, audit).append(acknowledgement_record(observed, previous, principal, via, commit)))
    write_pin(settings.state_dir, written)
    return written


def observe(git: Any, settings: Settings) -> Observed:
    """The standards committed on the protected ref and the governed config the files give.

    Raises IntegrityError when the standards are not committed there, ValueError when the server
    configuration files do not load."""
    raw = git.show(settings.protected_ref, STANDARDS_PATH)
    if raw is None:
        raise IntegrityError(f"{STANDARDS_PATH} is not committed on {settings.protected_ref}", f"commit the standards to {settings.protected_ref}", rule_id="standards.available")
    return Observed(settings.protected_ref, raw, file_config(settings.workspace, settings.state_dir))


def os_user() -> str:
    """The OS user running the command (who `mlgate init` names as the first acknowledger)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name) else f"uid-{os.getuid()}"


def acknowledge_initial(settings: Settings, git: Any) -> dict[str, Any]:
    """The first acknowledgement of a new workspace, by the operator running `mlgate init`.
    Raises IntegrityError when the chain cannot record."""
    return record_acknowledgement(settings, observe(git, settings), Principal(os_user(), "operator"), via="init", commit=git.head())
