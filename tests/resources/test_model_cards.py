"""The model resources on a real promotion: a trained run, its PR, promote to candidate through the
server (which logs the card), then registry moves made directly for champion and edge cases."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from resources.model_cards import MODELS_URI
from server.app import build_server
from tests.tools.promotion_lab import MODEL, Lab, build_candidate_lab, clone_run

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_candidate_lab(tmp_path_factory.mktemp("model-cards"))


async def read(lab: Lab, uri: str) -> dict[str, Any]:
    async with Client(build_server(lab.settings, lab.ports)) as client:
        result = await client.read_resource(uri)
    return json.loads(result.contents[0].text)


async def read_error(lab: Lab, uri: str) -> str:
    async with Client(build_server(lab.settings, lab.ports)) as client:
        with pytest.raises(MCPError) as failed:
            await client.read_resource(uri)
    return str(failed.value)


def register(lab: Lab, alias: str | None, card: dict[str, Any] | None = None, model: str = MODEL) -> str:
    """A clone of the lab's run registered as a new version (pointed at by `alias`), with `card` logged."""
    run_id = clone_run(lab, lab.run_id)
    version = lab.ports.registry.register(model, run_id, lab.ports.tracking.get_run(run_id)["artifact_uri"], {})
    if card is not None:
        lab.ports.tracking.log_json_artifact(run_id, "model_card.json", card)
    if alias is not None:
        lab.ports.registry.point(model, alias, version, {"run_id": run_id, "by": "alice", "at": "2026-01-01T00:00:00Z"})
    return version


async def test_the_model_list_shows_aliases_versions_and_card_uris(lab: Lab) -> None:
    models = {m["name"]: m for m in (await read(lab, MODELS_URI))["models"]}
    assert models[MODEL]["aliases"]["candidate"] == "1" and models[MODEL]["versions"][0]["run_id"] == lab.run_id
    assert models[MODEL]["card_uri"] == f"mlgate://models/{MODEL}/card"


async def test_without_a_champion_the_candidates_card_is_served(lab: Lab) -> None:
    document = await read(lab, f"mlgate://models/{MODEL}/card")
    assert document["alias"] == "candidate" and document["version"] == "1" and document["run_id"] == lab.run_id
    card = document["card"]
    assert card["model"] == {"name": MODEL, "version": "1", "alias": "candidate", "type": "logistic_regression"}
    assert card["provenance"]["dataset_content_hash"] == lab.dataset_hash and card["intended_use"] and card["limitations"]
    assert document["source"] == "run artifact model_card.json"


async def test_the_champions_card_wins_over_the_candidates(lab: Lab) -> None:
    version = register(lab, "champion", {"model": {"name": MODEL, "alias": "champion"}, "intended_use": "champion card"})
    document = await read(lab, f"mlgate://models/{MODEL}/card")
    assert document["alias"] == "champion" and document["version"] == version and document["card"]["intended_use"] == "champion card"


async def test_card_tags_stand_in_when_the_card_artifact_is_missing(lab: Lab) -> None:
    version = register(lab, "champion")
    lab.ports.registry.set_version_tags(MODEL, version, {"card.intended_use": "scoring", "card.commit": "a" * 40, "promoted": "true"})
    document = await read(lab, f"mlgate://models/{MODEL}/card")
    assert document["card"] == {"card.commit": "a" * 40, "card.intended_use": "scoring"} and "version tags" in document["source"]


async def test_a_version_promote_never_carded_is_not_served_as_a_card(lab: Lab) -> None:
    register(lab, "champion")
    assert "has no model card" in await read_error(lab, f"mlgate://models/{MODEL}/card")


async def test_models_of_other_projects_in_the_store_are_neither_listed_nor_carded(lab: Lab) -> None:
    """A tracking store shared by projects (a tracking server): this project's readers see its own
    model only, as they see its own runs only (runs.same_project)."""
    register(lab, "champion", {"model": {"name": "other-bank-scoring"}, "intended_use": "another client's scoring"}, model="other-bank-scoring")
    register(lab, None, model="unaliased")
    listed = (await read(lab, MODELS_URI))["models"]
    assert [m["name"] for m in listed] == [MODEL]
    for name in ("other-bank-scoring", "unaliased", "never-registered"):
        message = await read_error(lab, f"mlgate://models/{name}/card")
        assert "not this project's model" in message and MODELS_URI in message and "another client" not in message


async def test_a_model_of_another_project_with_a_quote_in_its_name_does_not_break_the_list(lab: Lab) -> None:
    """MLflow accepts any name; the list must not build a filter another project's name breaks."""
    lab.client.create_registered_model("other-bank's-model")
    listed = (await read(lab, MODELS_URI))["models"]
    assert [m["name"] for m in listed] == [MODEL]


@pytest.mark.parametrize("bad", ["-rf", "a b", "%2E%2E"])
async def test_malformed_model_names_are_not_found(lab: Lab, bad: str) -> None:
    assert "mlgate://models" in await read_error(lab, f"mlgate://models/{bad}/card")
