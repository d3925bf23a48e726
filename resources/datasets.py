"""Dataset resources: the content hashes under data/shadow, and one dataset's manifest.

Read-only. A manifest is served only after the dataset verified (every byte re-hashed, as
load_dataset does); it carries no sample rows (load_dataset returns those, PII masked).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
from mcp.server.mcpserver.exceptions import ResourceError

from tools.errors import GovernanceError
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


def register(server: Any, ports: Any) -> None:
    store: DatasetCatalog | None = ports.cas
    if store is None:
        return
    standards: PolicyConfig = ports.standards

    @server.resource(LIST_URI, name="datasets", title="Datasets", description="Content hashes of the datasets in data/shadow, with their manifest URIs.", mime_type="application/json")
    async def datasets() -> str:
        return json.dumps(await anyio.to_thread.run_sync(listing, store), sort_keys=True)

    @server.resource(
        MANIFEST_URI,
        name="dataset_manifest",
        title="Dataset manifest",
        description="A dataset's verified manifest: content and schema hashes, files, rows, columns, dtypes and quality checks (no rows).",
        mime_type="application/json",
    )
    async def dataset_manifest(content_hash: str) -> str:
        try:
            document = await anyio.to_thread.run_sync(manifest, store, standards, content_hash)
        except GovernanceError as exc:
            raise ResourceError(f"[{exc.rule_id}] {exc.reason}; what to do: {exc.remediation}") from exc
        return json.dumps(document, sort_keys=True)
