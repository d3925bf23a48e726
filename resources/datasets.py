"""Dataset resources: the registered datasets under data/shadow, and one dataset's manifest.

The listing names only the datasets the data.registered rule accepts (imported by an operator with
`mlgate data add`: in the dataset registry and vouched for by the audit chain's import record), the
only ones load_dataset and run_experiment will use. Directories nobody imported are not offered;
they are counted (`unregistered`) so a copied or fabricated directory is not silently ignored.

Read-only. A manifest is served only after the dataset verified (every byte re-hashed, as
load_dataset does); it carries no sample rows (load_dataset returns those, PII masked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from policies.data import registered
from policies.decision import decide_one
from resources.base import ReadContext, ResourceSpec
from tools import strict_json
from tools.load_dataset import columns_to_detail, detailed_manifest, quality_checks

LIST_URI = "mlgate://datasets"
MANIFEST_URI = "mlgate://datasets/{content_hash}"


class Loaded(Protocol):
    frame: Any
    manifest: dict[str, Any]


class DatasetCatalog(Protocol):
    def list_hashes(self) -> list[str]: ...

    def registration(self, content_hash: str) -> Mapping[str, Any]:
        """The facts data.registered decides on: registered, audited, detail, imported_by; and
        the rows and file names the import record vouches for."""
        ...

    def load(self, content_hash: str, limits: Mapping[str, Any] | None = None) -> Loaded:
        """Verify and parse. Raises InvalidInput, NotFound, IntegrityError."""
        ...


class PolicyConfig(Protocol):
    def policy_config(self) -> dict[str, Any]: ...


UNREGISTERED_NOTE = "directories under data/shadow that no operator imported with `mlgate data add`: not listed, and they cannot be loaded or trained on"


def usable(content_hash: str, registration: Mapping[str, Any]) -> bool:
    """Whether data.registered allows this dataset (the rule itself decides, as for load_dataset)."""
    return decide_one(registered, {"requested": content_hash, "registration": dict(registration)}, {}).allowed


def listing(store: DatasetCatalog) -> dict[str, Any]:
    """The registered datasets on disk, and how many other directories there are."""
    hashes = store.list_hashes()
    facts = {h: store.registration(h) for h in hashes}
    listed = [h for h in hashes if usable(h, facts[h])]
    datasets = [{"content_hash": h, "files": facts[h].get("files"), "rows": facts[h].get("rows"), "imported_by": facts[h].get("imported_by"), "uri": f"mlgate://datasets/{h}"} for h in listed]
    return {"datasets": datasets, "count": len(listed), "unregistered": len(hashes) - len(listed), "unregistered_note": UNREGISTERED_NOTE}


def manifest(store: DatasetCatalog, standards: PolicyConfig, content_hash: str) -> dict[str, Any]:
    """The verified dataset's manifest with quality checks. Raises GovernanceError."""
    config = standards.policy_config()
    limits = config["policy"]["datasets"]
    loaded = store.load(content_hash, limits)
    # As load_dataset without `columns`: a wide dataset's details cover its first columns and the label.
    detailed = columns_to_detail(loaded.frame, None, limits, config["standards"])
    return {**detailed_manifest(loaded.manifest, detailed), "quality": quality_checks(loaded.frame, config["standards"], int(limits["max_classes"]), detailed)}


def _listing(ctx: ReadContext, params: Mapping[str, str]) -> str:
    return strict_json.dumps(listing(ctx.ports.cas), sort_keys=True)


def _manifest(ctx: ReadContext, params: Mapping[str, str]) -> str:
    """Raises GovernanceError (malformed, unknown or corrupt dataset)."""
    return strict_json.dumps(manifest(ctx.ports.cas, ctx.ports.standards, str(params["content_hash"])), sort_keys=True)


SPECS = (
    ResourceSpec(LIST_URI, "datasets", "Datasets", "Content hashes of the registered datasets (imported by an operator) in data/shadow, with their manifest URIs; directories nobody imported are only counted.", _listing, requires=("cas",)),
    ResourceSpec(
        MANIFEST_URI,
        "dataset_manifest",
        "Dataset manifest",
        "A dataset's verified manifest: content and schema hashes, files, rows, columns, dtypes and quality checks (no rows).",
        _manifest,
        requires=("cas", "standards"),
    ),
)
