"""Attacks on the lifecycle stages, performed for real on a sqlite MLflow registry: a stage tag set
or removed with the MLflow client (what an agent with the store's files can do in local-stdio mode)
is checked against mlgate's witnessed alias history and refused; an agent cannot archive."""

from __future__ import annotations


import pytest

from server.ports import Ports
from tests.server.registry_helpers import MODEL, promoted
from tests.tools.test_lifecycle import as_alice, experiment, ports  # noqa: F401 - fixtures
from tools.lifecycle import SPEC as ARCHIVE
from tools.rollback import SPEC as ROLLBACK

pytestmark = pytest.mark.anyio


async def test_an_archived_version_retagged_candidate_outside_mlgate_is_refused(ports: Ports, experiment: str) -> None:
    (_, v1), (_, v2) = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    assert not (await as_alice(ports, ARCHIVE, version=v1))[0]
    ports.tracking.client.set_model_version_tag(MODEL, v1, "mlgate.stage", "candidate")  # the forgery
    failed, content = await as_alice(ports, ROLLBACK, alias="candidate")
    assert failed and content["rule_id"] == "lifecycle.stage_recorded" and "outside mlgate" in content["reason"]
    assert ports.registry.alias_version(MODEL, "candidate") == v2


async def test_a_removed_stage_tag_does_not_make_a_replaced_champion_a_candidate_again(ports: Ports, experiment: str) -> None:
    (_, v1), _ = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    ports.tracking.client.delete_model_version_tag(MODEL, v1, "mlgate.stage")  # falls back to "candidate"
    assert ports.registry.stage(MODEL, v1) == "candidate" and ports.registry.recorded_stage(MODEL, v1) == "archived"
    failed, content = await as_alice(ports, ARCHIVE, version=v1)
    assert failed and "lifecycle.stage_recorded" in {d["rule_id"] for d in content.get("denials") or [content]}
