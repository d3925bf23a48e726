"""Rules about the standards themselves (DESIGN §9: read from the protected ref, drift denied)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.decision import Decision, rule


@rule(
    "standards.no_drift",
    source="DESIGN.md §9 trust boundaries",
    description="The working-tree project_standards.yaml must equal the one committed on the protected ref.",
)
def standards_no_drift(facts: Any, config: Mapping[str, Any]) -> Decision:
    if config["standards_drift"] is False:
        return Decision.allow("standards.no_drift", "standards match the protected ref")
    return Decision.deny(
        "standards.no_drift",
        "configs/project_standards.yaml in the working tree differs from the protected branch; the committed version governs",
        "restore it (git checkout main -- configs/project_standards.yaml); change standards only through a reviewed merge to main",
    )


ACCEPT_REMEDIATION = (
    "a human or operator reviews the change and runs `mlgate standards accept --workspace DIR` with their own "
    "credential (it shows this diff and records the acknowledgement in the audit chain); until then every call is "
    "refused. Agents: report this to a human, do not retry"
)


def _drift(ack: Mapping[str, Any]) -> list[str]:
    """Which of the two pinned hashes moved, old -> new."""
    acknowledged = ack.get("acknowledged") or {}
    moved = []
    for key, what in (("standards_sha256", "standards"), ("server_config_sha256", "server config")):
        if acknowledged.get(key) != ack.get(key):
            moved.append(f"{what} sha256 {acknowledged.get(key)} -> {ack.get(key)}")
    return moved


@rule(
    "standards.acknowledged",
    source="DESIGN.md §9 trust boundaries; standards relaxed by a plain commit to main",
    description="The standards on the protected ref and the governed server config are the ones a human or operator last acknowledged (audit chain record, pinned).",
)
def standards_acknowledged(facts: Any, config: Mapping[str, Any]) -> Decision:
    ack = config.get("acknowledgement")
    if not isinstance(ack, Mapping):
        return Decision.deny("standards.acknowledged", "no acknowledgement of the standards is known to this server", ACCEPT_REMEDIATION)
    if ack.get("problem"):
        return Decision.deny("standards.acknowledged", f"the standards in force are not acknowledged: {ack['problem']}", ACCEPT_REMEDIATION)
    moved = _drift(ack)
    if not moved:
        return Decision.allow("standards.acknowledged", "standards and server config are the acknowledged ones")
    acknowledged = ack.get("acknowledged") or {}
    changes = "; ".join(ack.get("changes") or []) or "contents changed"
    return Decision.deny(
        "standards.acknowledged",
        f"the standards on {ack.get('protected_ref')} or the server config changed since {acknowledged.get('principal')} ({acknowledged.get('role')}) "
        f"acknowledged them (audit seq {acknowledged.get('seq')}): {changes} [{'; '.join(moved)}]",
        ACCEPT_REMEDIATION,
    )
