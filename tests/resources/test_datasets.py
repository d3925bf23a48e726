"""The dataset resources through a real in-memory MCP client on a real workspace."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from resources.datasets import LIST_URI, UNREGISTERED_NOTE
from server.app import build_server
from policies import Principal
from server.commands.data import import_files
from server.demo_data import write_credit_csv
from server.ports import Ports
from server.settings import Settings
from tests.server.cas_helpers import writable

pytestmark = pytest.mark.anyio


@pytest.fixture
def dataset(workspace: Path, tmp_path: Path) -> str:
    return import_files(workspace, [write_credit_csv(tmp_path / "credit.csv", rows=80)], Principal("olga", "operator")).added.content_hash


async def read(settings: Settings, ports: Ports, uri: str) -> dict:
    async with Client(build_server(settings, ports)) as client:
        result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)


def fabricate(workspace: Path, body: bytes) -> str:
    """A dataset directory laid out by hand exactly as an import would (its bytes verify against its
    name), which no operator imported."""
    manifest = f"made.csv\t{len(body)}\t{hashlib.sha256(body).hexdigest()}\n".encode()
    content_hash = hashlib.sha256(manifest).hexdigest()
    folder = workspace / "data" / "shadow" / content_hash
    folder.mkdir(parents=True)
    (folder / "made.csv").write_bytes(body)
    (folder / "manifest.tsv").write_bytes(manifest)
    return content_hash


async def test_the_listing_names_every_registered_dataset_with_its_manifest_uri(settings: Settings, ports: Ports, dataset: str) -> None:
    listing = await read(settings, ports, LIST_URI)
    expected = [{"content_hash": dataset, "files": ["credit.csv"], "rows": 80, "imported_by": "olga", "uri": f"mlgate://datasets/{dataset}"}]
    assert listing == {"count": 1, "datasets": expected, "unregistered": 0, "unregistered_note": UNREGISTERED_NOTE}


async def test_an_empty_workspace_lists_no_datasets(settings: Settings, ports: Ports) -> None:
    listing = await read(settings, ports, LIST_URI)
    assert listing["datasets"] == [] and listing["count"] == 0 and listing["unregistered"] == 0


async def test_a_directory_nobody_imported_is_not_listed_only_counted(settings: Settings, ports: Ports, workspace: Path, tmp_path: Path, dataset: str) -> None:
    made = fabricate(workspace, write_credit_csv(tmp_path / "made.csv", rows=30, seed=3).read_bytes())
    listing = await read(settings, ports, LIST_URI)
    assert [d["content_hash"] for d in listing["datasets"]] == [dataset] and listing["count"] == 1
    assert listing["unregistered"] == 1 and made not in json.dumps(listing) and "mlgate data add" in listing["unregistered_note"]


async def test_the_listing_tells_dataset_versions_apart_by_their_vouched_files_and_rows(settings: Settings, ports: Ports, workspace: Path, tmp_path: Path, dataset: str) -> None:
    labelled = import_files(workspace, [write_credit_csv(tmp_path / "labelled.csv", rows=60)], Principal("olga", "operator")).added.content_hash
    listing = await read(settings, ports, LIST_URI)
    assert {d["content_hash"]: (d["files"], d["rows"]) for d in listing["datasets"]} == {dataset: (["credit.csv"], 80), labelled: (["labelled.csv"], 60)}


async def test_the_importer_shown_is_the_audit_record_s_not_a_name_edited_into_the_registry(settings: Settings, ports: Ports, dataset: str) -> None:
    registry = settings.state_dir / "datasets.json"
    document = json.loads(registry.read_text())
    document["datasets"][dataset]["imported_by"]["name"] = "chief-risk-officer"  # not a vouched field: the entry still counts
    registry.write_text(json.dumps(document))
    listing = await read(settings, ports, LIST_URI)
    assert [d["imported_by"] for d in listing["datasets"]] == ["olga"]


async def test_a_registry_entry_the_audit_chain_does_not_vouch_for_is_not_listed(settings: Settings, ports: Ports, workspace: Path, tmp_path: Path, dataset: str) -> None:
    made = fabricate(workspace, write_credit_csv(tmp_path / "made.csv", rows=30, seed=3).read_bytes())
    registry = settings.state_dir / "datasets.json"
    document = json.loads(registry.read_text())
    document["datasets"][made] = {**document["datasets"][dataset], "content_hash": made, "rows": 30}  # pasted by hand
    registry.write_text(json.dumps(document))
    listing = await read(settings, ports, LIST_URI)
    assert [d["content_hash"] for d in listing["datasets"]] == [dataset] and listing["unregistered"] == 1


async def test_a_manifest_is_served_after_verification_without_any_rows(settings: Settings, ports: Ports, dataset: str) -> None:
    manifest = await read(settings, ports, f"mlgate://datasets/{dataset}")
    assert manifest["content_hash"] == dataset and manifest["rows"] == 80 and "sample" not in manifest
    assert manifest["quality"]["class_balance"]["label"] == "default" and "customer_id" not in manifest["quality"]["ranges"]
    assert "@example.com" not in json.dumps(manifest)


async def test_the_manifest_template_is_advertised(settings: Settings, ports: Ports) -> None:
    async with Client(build_server(settings, ports)) as client:
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
    assert "mlgate://datasets/{content_hash}" in templates


@pytest.mark.parametrize("bad", ["ABC", "a" * 63, "g" * 64])
async def test_a_malformed_hash_is_a_resource_error_saying_what_a_hash_is(settings: Settings, ports: Ports, bad: str) -> None:
    async with Client(build_server(settings, ports)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource(f"mlgate://datasets/{bad}")
    assert "data.hash_format" in str(failed.value) and "64 lowercase hexadecimal" in str(failed.value)


@pytest.mark.parametrize("bad", ["..", "%2E%2E", "%2Fetc%2Fpasswd"])
async def test_path_like_hashes_never_reach_the_store(settings: Settings, ports: Ports, bad: str) -> None:
    async with Client(build_server(settings, ports)) as client:
        with pytest.raises(MCPError):
            await client.read_resource(f"mlgate://datasets/{bad}")


async def test_a_tampered_dataset_is_a_resource_error_with_the_integrity_rule(settings: Settings, ports: Ports, workspace: Path, dataset: str) -> None:
    with writable(workspace / "data" / "shadow" / dataset) as folder:
        (folder / "extra.csv").write_text("a\n1\n")
    async with Client(build_server(settings, ports)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource(f"mlgate://datasets/{dataset}")
    assert "[data.integrity]" in str(failed.value) and "extra.csv was not imported" in str(failed.value)
