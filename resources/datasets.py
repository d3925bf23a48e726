"""Dataset resources: the content hashes under data/shadow, and one dataset's manifest.

Read-only. A manifest is served only after the dataset verified (every byte re-hashed, as
load_dataset does); it carries no sample rows (load_dataset returns those, PII masked).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from resources.base import ReadContext, ResourceSpec
from tools.load_dataset import quality_checks

LIST_URI = "mlgate://datasets"
MANIFEST_URI = "mlgate://datasets/{content_hash}"


class Loaded(Protocol):
    frame: Any
    manifest: dict[str, Any]


class DatasetCatalog(Protocol):
    def list_hashes(self) -> list[str]: ...

    def load(self, content_hash: str, limits: Mapping[str, Any] | None = None) -> Loaded:
        """Verify and parse. Raises InvalidInput, NotFound, IntegrityError."""
        ...


class PolicyConfig(Protocol):
    def policy_config(self) -> dict[str, Any]: ...


def listing(store: DatasetCatalog) -> dict[str, Any]:
    hashes = store.list_hashes()
    return {"datasets": [{"content_hash": h, "uri": f"mlgate://datasets/{h}"} for h in hashes], "count": len(hashes)}


def manifest(store: DatasetCatalog, standards: PolicyConfig, content_hash: str) -> dict[str, Any]:
    """The verified dataset's manifest with quality checks. Raises GovernanceError."""
    config = standards.policy_config()
    limits = config["policy"]["datasets"]
    loaded = store.load(content_hash, limits)
    return {**loaded.manifest, "quality": quality_checks(loaded.frame, config["standards"], int(limits["max_classes"]))}


def _listing(ctx: ReadContext, params: Mapping[str, str]) -> str:
    return json.dumps(listing(ctx.ports.cas), sort_keys=True)


def _manifest(ctx: ReadContext, params: Mapping[str, str]) -> str:
    """Raises GovernanceError (malformed, unknown or corrupt dataset)."""
    return json.dumps(manifest(ctx.ports.cas, ctx.ports.standards, str(params["content_hash"])), sort_keys=True)


SPECS = (
    ResourceSpec(LIST_URI, "datasets", "Datasets", "Content hashes of the datasets in data/shadow, with their manifest URIs.", _listing, requires=("cas",)),
    ResourceSpec(
        MANIFEST_URI,
        "dataset_manifest",
        "Dataset manifest",
        "A dataset's verified manifest: content and schema hashes, files, rows, columns, dtypes and quality checks (no rows).",
        _manifest,
        requires=("cas", "standards"),
    ),
)
