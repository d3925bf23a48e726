"""archive_version and the lifecycle stages promotions and rollbacks move, through the real server's
enforcement point on a real sqlite MLflow registry; the audit chain records each stage change."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from server.app import build_server
from server.audit import verify
from server.enforcement import Enforcer
from server.ports import Ports, build_ports
from server.settings import Settings
from tests.credentials import approver
from tests.server.registry_helpers import MODEL, promoted
from tools.base import CallContext
from tools.lifecycle import SPEC as ARCHIVE
from tools.rollback import SPEC as ROLLBACK

pytestmark = pytest.mark.anyio


@pytest.fixture
def ports(settings: Settings) -> Ports:
    return build_ports(settings)


@pytest.fixture
def experiment(ports: Ports) -> str:
    return ports.tracking.get_or_create_experiment("demo-bank/credit-default")


async def as_alice(ports: Ports, spec: Any, **arguments: Any) -> tuple[bool, dict[str, Any]]:
    """alice with her verified human token, through the same enforcement point as every call."""
    context = CallContext(principal=approver(ports.settings.state_dir, "alice"), transport="streamable-http", ports=ports)
    result = await Enforcer(ports.audit, ports.standards.policy_config).call(spec, {"model": MODEL, **arguments}, context)
    return result.is_error, result.structured_content


async def test_a_human_archives_an_unaliased_candidate_and_the_chain_records_it(ports: Ports, experiment: str) -> None:
    (run_id, v1), _ = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    failed, content = await as_alice(ports, ARCHIVE, version=v1, note="superseded by v2")
    assert not failed, content
    assert content["stage_changes"] == [{"version": v1, "from": "candidate", "to": "archived"}] and ports.registry.stage(MODEL, v1) == "archived"
    assert ports.registry.events(MODEL, "lifecycle")[-1]["note"] == "superseded by v2"
    outcome = [r for r in ports.audit.tail(5) if r.get("tool") == "archive_version"][-1]
    assert (outcome["principal"], outcome["status"], outcome["run_id"], outcome["lifecycle"]) == ("alice", "ok", run_id, f"v{v1}:candidate->archived")
    assert verify(ports.settings.audit_path).ok


async def test_the_version_an_alias_points_at_is_not_archived(ports: Ports, experiment: str) -> None:
    _, (_, v2) = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    failed, content = await as_alice(ports, ARCHIVE, version=v2)
    assert failed and content["rule_id"] == "lifecycle.archive_unaliased"
    assert ports.registry.stage(MODEL, v2) == "candidate"


async def test_a_replaced_champion_cannot_be_archived_again_by_hand(ports: Ports, experiment: str) -> None:
    (_, v1), _ = promoted(ports.registry, ports.tracking, experiment, "champion", 2)
    assert ports.registry.stage(MODEL, v1) == "archived"
    failed, content = await as_alice(ports, ARCHIVE, version=v1)
    assert failed and content["rule_id"] == "lifecycle.transition"


async def test_agents_cannot_archive(settings: Settings, ports: Ports, experiment: str) -> None:
    (_, v1), _ = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    async with Client(build_server(settings, ports)) as client:
        result = await client.call_tool("archive_version", {"model": MODEL, "version": v1})
    assert result.is_error and result.structured_content["rule_id"] == "role.approver_authenticated"
    assert ports.registry.stage(MODEL, v1) == "candidate"


async def test_the_candidate_alias_is_not_rolled_back_onto_an_archived_version(ports: Ports, experiment: str) -> None:
    (_, v1), (_, v2) = promoted(ports.registry, ports.tracking, experiment, "candidate", 2)
    assert not (await as_alice(ports, ARCHIVE, version=v1))[0]
    failed, content = await as_alice(ports, ROLLBACK, alias="candidate")
    assert failed and content["rule_id"] == "lifecycle.transition" and "candidate again" in content["remediation"]
    assert ports.registry.alias_version(MODEL, "candidate") == v2


async def test_another_projects_model_in_a_shared_store_is_neither_archived_nor_rolled_back(ports: Ports, experiment: str) -> None:
    other = "other-bank-other-project"
    foreign = ports.tracking.get_or_create_experiment("other-bank/other-project")
    (_, v1), (_, v2) = promoted(ports.registry, ports.tracking, foreign, "candidate", 2, model=other)
    for spec, arguments in ((ARCHIVE, {"version": v1}), (ROLLBACK, {"alias": "candidate"})):
        failed, content = await as_alice(ports, spec, model=other, **arguments)
        assert failed and content["rule_id"] == "lifecycle.own_model" and MODEL in content["remediation"], content
    assert ports.registry.stage(other, v1) == "candidate" and ports.registry.alias_version(other, "candidate") == v2
