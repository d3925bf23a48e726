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
