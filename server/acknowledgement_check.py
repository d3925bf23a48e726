"""What the server compares on every call: the standards and server config in force against the
audit chain's latest vouched acknowledgement (server/acknowledgements.py), and the field-level
drift a denial names. The decision itself is the pure rule `standards.acknowledged`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policies.provenance import STANDARDS_PATH
from server.acknowledgements import PIN_FILE, AcknowledgementLedger, Observed, file_config, flatten, pin_of, read_pin
from server.git import GitRepo
from server.safe_yaml import load_document
from server.settings import CONFIGS_DIR, policy_limits
from tools.errors import GovernanceError

MAX_CHANGES = 20
_BLOB = re.compile(r"^[0-9a-f]{40}\Z")


def _bytes_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def mapping_changes(where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per dotted key added, removed or changed between two flat mappings."""
    lines = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            lines.append(f"{where} {key}: removed (was {_shown(old[key])})")
        elif key not in old:
            lines.append(f"{where} {key}: added ({_shown(new[key])})")
        elif old[key] != new[key]:
            lines.append(f"{where} {key}: {_shown(old[key])} -> {_shown(new[key])}")
    return lines


def _standards_document(raw: bytes) -> dict[str, Any] | None:
    try:
        return flatten(load_document(raw, policy_limits()["documents"], name=STANDARDS_PATH))
    except GovernanceError:
        return None


def standards_changes(git: GitRepo, acknowledged_blob: Any, current: bytes) -> list[str]:
    """Field-level changes of the standards since the acknowledged version (read back from git by
    its blob id); a coarse line when either side cannot be read."""
    old_raw = None
    if isinstance(acknowledged_blob, str) and _BLOB.match(acknowledged_blob):
        proc = git.run("cat-file", "blob", acknowledged_blob, check=False)
        old_raw = proc.stdout if proc.returncode == 0 else None
    old = _standards_document(old_raw) if old_raw is not None else None
    new = _standards_document(current)
    if old is None or new is None:
        return [f"standards: content changed (the {'acknowledged' if old is None else 'current'} version cannot be read field by field)"]
    return mapping_changes("standards", old, new) or ["standards: formatting or comments changed"]


def describe_changes(git: GitRepo, acknowledged: Mapping[str, Any], observed: Observed) -> list[str]:
    """What differs from the acknowledged record, standards first, at most MAX_CHANGES lines."""
    lines: list[str] = []
    if acknowledged.get("standards_sha256") != observed.standards_sha256:
        lines += standards_changes(git, acknowledged.get("standards_blob"), observed.standards)
    if acknowledged.get("server_config_sha256") != observed.server_config_sha256:
        old = acknowledged.get("server_config")
        lines += mapping_changes("server config", old if isinstance(old, Mapping) else {}, observed.server_config)
    if len(lines) > MAX_CHANGES:
        lines = [*lines[:MAX_CHANGES], f"... and {len(lines) - MAX_CHANGES} more"]
    return lines


class AcknowledgementCheck:
    """Builds the `acknowledgement` facts of the policy config for one workspace and state dir."""

    def __init__(self, git: GitRepo, workspace: Path, state_dir: Path) -> None:
        self._git, self._workspace, self._state_dir = git, Path(workspace), Path(state_dir)
        self.ledger = AcknowledgementLedger(self._state_dir / "audit.jsonl")
        self._config: tuple[tuple[bytes | None, ...], dict[str, Any]] | None = None

    def observe(self, ref: str, committed: bytes) -> Observed:
        """Raises ValueError when the server configuration files do not load."""
        return Observed(ref, committed, self._file_config())

    def _file_config(self) -> dict[str, Any]:
        """The governed config, parsed again only when the bytes of a config file changed (YAML
        parsing costs milliseconds; reading two small files does not)."""
        key = tuple(_bytes_or_none(path) for path in (CONFIGS_DIR / "server.yaml", self._state_dir / "server.yaml"))
        if self._config is None or self._config[0] != key:
            self._config = (key, file_config(self._workspace, self._state_dir))
        return dict(self._config[1])

    def facts(self, ref: str, committed: bytes) -> dict[str, Any]:
        """{protected_ref, standards_sha256, server_config_sha256, acknowledged, changes, problem}."""
        facts: dict[str, Any] = {"protected_ref": ref, "standards_sha256": hashlib.sha256(committed).hexdigest(), "server_config_sha256": None, "acknowledged": None, "changes": [], "problem": None}
        try:
            observed = self.observe(ref, committed)
        except ValueError as exc:
            return {**facts, "problem": str(exc)}
        facts["server_config_sha256"] = observed.server_config_sha256
        latest = self.ledger.latest()
        if latest is None:
            return {**facts, "problem": "the audit chain holds no acknowledgement of the standards and server config by a human or operator"}
        facts["acknowledged"] = {k: latest.get(k) for k in ("seq", "standards_sha256", "server_config_sha256", "principal", "role", "via")}
        if read_pin(self._state_dir) != pin_of(latest):
            facts["problem"] = f"{self._state_dir / PIN_FILE} is not the audit chain's latest acknowledgement (seq {latest['seq']}): a pin without its audit record grants nothing"
        facts["changes"] = describe_changes(self._git, latest, observed)
        return facts
