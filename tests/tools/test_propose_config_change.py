"""propose_config_change through the real server (in-memory MCP client), real workspace and git,
real approval store, overrides log and audit chain; approvals decided with the real CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from server.app import build_server
from server.cli import main
from server.safe_yaml import load_document
from server.settings import Settings, load_settings, policy_limits
from tests.credentials import use_token

pytestmark = pytest.mark.anyio

REASONING = {
    "hypothesis_category": "hyperparameter_tuning",
    "change_description": "Deeper trees to capture interactions between income and debt",
    "expected_effect": "roc_auc improves by about one point on the validation folds",
}
WATCHED = ("configs/experiment.yaml", "configs/reasoning.yaml", "logs/protected_overrides.log")
LIMITS = policy_limits()["documents"]


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Any]:
    async with Client(build_server(settings)) as client:
        yield client


async def propose(client: Any, changes: Any, reasoning: Any = REASONING, **extra: Any) -> dict[str, Any]:
    arguments = {"changes": changes, **({"reasoning": reasoning} if reasoning is not None else {}), **extra}
    result = await client.call_tool("propose_config_change", arguments)
    assert result.is_error == (result.structured_content.get("decision") == "deny" or "status" in result.structured_content)
    return result.structured_content


def snapshot(workspace: Path) -> dict[str, bytes]:
    return {name: (workspace / name).read_bytes() for name in WATCHED}


def approvals(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((settings.state_dir / "approvals").glob("apr-*.json"))]


def experiment(workspace: Path) -> dict[str, Any]:
    return load_document((workspace / "configs/experiment.yaml").read_bytes(), LIMITS)


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_path.read_text().splitlines() if line.strip()]


@pytest.fixture
def alice_token(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """alice's human token in MLGATE_TOKEN, as in her own shell."""
    return use_token(monkeypatch, settings.state_dir, "alice")


async def cli(*argv: str) -> int:
    return await anyio.to_thread.run_sync(main, list(argv))


# --- allowed changes ----------------------------------------------------------------------------


async def test_a_random_split_under_standards_with_a_time_column_is_written_with_a_warning(settings: Settings, workspace: Path) -> None:
    """Allowed (a dataset without the time column may use it), but run_experiment denies it on any
    dataset that has the column: the agent learns it before committing the change."""
    split = {"split": {"strategy": "stratified_kfold", "n_splits": 5, "test_size": 0.2}}
    async with connect(settings) as client:
        previewed = await propose(client, split, dry_run=True)
        written = await propose(client, split)
        back = await propose(client, {"split": {"strategy": "temporal_split", "test_size": 0.2, "validation_size": 0.2}})
    for content in (previewed, written):
        assert content["decision"] == "allow" and len(content["warnings"]) == 1, content
        assert "time column 'application_date'" in content["warnings"][0] and "training.temporal_split_when_time" in content["warnings"][0]
    assert experiment(workspace)["split"]["strategy"] == "temporal_split" and back["warnings"] == []



async def test_allowed_change_is_written_to_the_working_tree_and_returns_the_diff(settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        result = await propose(client, {"model.params.max_depth": 6, "evaluation.bootstrap_samples": 500})
    assert result["decision"] == "allow" and result["changed"] is True
    assert result["diff"] == [
        {"path": "evaluation.bootstrap_samples", "op": "replace", "old": 200, "new": 500},
        {"path": "model.params.max_depth", "op": "replace", "old": 4, "new": 6},
    ]
    written = experiment(workspace)
    assert written["model"]["params"]["max_depth"] == 6 and written["evaluation"]["bootstrap_samples"] == 500
    assert load_document((workspace / "configs/reasoning.yaml").read_bytes(), LIMITS)["change_description"] == REASONING["change_description"]
    assert approvals(settings) == []
    outcome = audit(settings)[-1]
    assert outcome["kind"] == "outcome" and outcome["status"] == "ok" and outcome["change_hash"] == result["change_hash"]


async def test_written_config_is_readable_yaml_in_schema_order(settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        await propose(client, {"experiment.seed": 7})
    text = (workspace / "configs/experiment.yaml").read_text()
    assert text.startswith("# What to run.") and "metrics: [roc_auc, pr_auc, f1, log_loss, brier]" in text
    assert [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(("#", " "))] == ["experiment", "data", "split", "model", "features", "evaluation"]


async def test_a_server_write_keeps_the_comments_of_experiment_yaml(settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        await propose(client, {"model.params.max_depth": 6})
    text = (workspace / "configs/experiment.yaml").read_text()
    assert "test_size: 0.2             # latest 20% of rows: the held-out test set (protected)" in text
    assert "max_depth: 6" in text and experiment(workspace)["model"]["params"]["max_depth"] == 6


async def test_changes_as_yaml_text_mean_the_same_as_the_object(settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        as_text = await propose(client, "model.params.max_depth: 6\nevaluation.bootstrap_samples: 500\n", dry_run=True)
        as_object = await propose(client, {"model.params.max_depth": 6, "evaluation.bootstrap_samples": 500}, dry_run=True)
    assert as_text["diff"] == as_object["diff"] and as_text["change_hash"] == as_object["change_hash"]


async def test_switching_model_family_replaces_the_whole_model_mapping(settings: Settings, workspace: Path) -> None:
    model = {"type": "torch_mlp", "params": {"hidden_sizes": [16, 8], "batch_size": 32, "grad_accum_steps": 2, "epochs": 3, "lr": 0.01}}
    async with connect(settings) as client:
        result = await propose(client, {"model": model})
    assert result["decision"] == "allow"
    written = experiment(workspace)["model"]
    assert written["type"] == "torch_mlp" and written["params"]["hidden_sizes"] == [16, 8] and "n_estimators" not in written["params"]


async def test_a_section_mapping_that_drops_required_fields_says_to_use_dotted_paths(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, {"data": {"dataset": "a" * 64}})
    assert result["rule_id"] == "config.schema_valid" and snapshot(workspace) == before
    assert "data.target: Field required (the file has it; the mapping given for data replaced all of data: to set only data.dataset" in result["reason"]
    assert "send each by its dotted path" in result["schema_errors"][0]


async def test_a_field_missing_from_the_file_itself_is_reported_as_missing(settings: Settings, workspace: Path) -> None:
    text = (workspace / "configs/experiment.yaml").read_text()
    (workspace / "configs/experiment.yaml").write_text(text.replace("  target: default\n", ""))
    async with connect(settings) as client:
        result = await propose(client, {"model.params.max_depth": 6})
    assert result["schema_errors"] == ["data.target: Field required"]


async def test_dry_run_returns_the_decision_and_diff_and_writes_nothing(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        allowed = await propose(client, {"model.params.max_depth": 6}, dry_run=True)
        denied = await propose(client, {"data.target": "churn"}, dry_run=True)
    assert allowed["decision"] == "allow" and allowed["dry_run"] is True and allowed["diff"][0]["new"] == 6
    assert denied["decision"] == "deny" and denied["dry_run"] is True and denied["rule_id"] == "config.protected_fields"
    assert denied["diff"] == [{"path": "data.target", "op": "replace", "old": "default", "new": "churn"}] and "approval_id" not in denied
    assert snapshot(workspace) == before and approvals(settings) == []


async def test_an_agent_claiming_the_outcome_before_the_run_is_denied_and_nothing_is_written(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        denied = await propose(client, {"model.params.max_depth": 6}, {**REASONING, "outcome": "confirmed", "metric_delta": 0.05})
    assert denied["rule_id"] == "reasoning.outcome_from_the_run" and "outcome='confirmed'" in denied["reason"]
    assert snapshot(workspace) == before


async def test_a_human_may_change_unprotected_fields_without_reasoning(workspace: Path) -> None:
    human = load_settings(workspace, transport="memory", local_principal="alice", local_role="human")
    before = snapshot(workspace)
    async with connect(human) as client:
        result = await propose(client, {"experiment.seed": 7}, reasoning=None)
    assert result["decision"] == "allow" and result["written"] == ["configs/experiment.yaml"]
    assert snapshot(workspace)["configs/reasoning.yaml"] == before["configs/reasoning.yaml"]


async def test_a_no_op_change_writes_nothing(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, {"model.params.max_depth": 4})
    assert result["decision"] == "allow" and result["changed"] is False and result["diff"] == []
    assert snapshot(workspace) == before


# --- protected fields and the approval lifecycle -----------------------------------------------


async def test_protected_field_change_is_denied_for_agents_and_opens_a_pending_approval(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, {"data.target": "churn"})
    assert result["decision"] == "deny" and result["rule_id"] == "config.protected_fields"
    assert f"mlgate approvals approve {result['approval_id']}" in result["next_step"]
    assert snapshot(workspace) == before
    [record] = approvals(settings)
    assert record["id"] == result["approval_id"] and record["status"] == "pending" and record["change_hash"] == result["change_hash"]
    assert record["requested_by"] == {"name": "local-agent", "role": "agent"} and record["diff"] == result["diff"]
    assert record["reasoning"]["change_description"] == REASONING["change_description"] and record["created_at"]
    outcome = audit(settings)[-1]
    assert outcome["status"] == "denied" and outcome["approval_id"] == record["id"] and outcome["change_hash"] == record["change_hash"]


async def test_a_protected_change_that_opens_no_approval_says_how_to_get_one(settings: Settings, workspace: Path) -> None:
    """The remediation points at an approval id; a dry run, or a call another rule denies too, opens
    none: the answer says what opens it instead of sending the agent after an id that is not there."""
    async with connect(settings) as client:
        dry = await propose(client, {"data.target": "churn"}, dry_run=True)
        mixed = await propose(client, {"data.target": "churn"}, reasoning={**REASONING, "change_description": "deeper"})
    for result in (dry, mixed):
        assert result["rule_id"] == "config.protected_fields" and "approval_id" not in result, result
    assert "without dry_run" in dry["next_step"] and "approval_id" in dry["next_step"]
    assert "reasoning.required_for_agents" in mixed["next_step"] and "no approval was opened" in mixed["next_step"]
    assert approvals(settings) == []


async def test_a_second_identical_proposal_reuses_the_pending_approval(settings: Settings) -> None:
    async with connect(settings) as client:
        first = await propose(client, {"data.target": "churn"})
        second = await propose(client, "data.target: churn")
        other = await propose(client, {"data.target": "churned"})
    assert second["approval_id"] == first["approval_id"] and second["approval_created"] is False
    assert other["approval_id"] != first["approval_id"] and len(approvals(settings)) == 2


async def test_an_agent_past_its_pending_approvals_limit_opens_no_new_one(settings: Settings, workspace: Path) -> None:
    limit = policy_limits()["approvals"]["max_pending_per_requester"]
    async with connect(settings) as client:
        opened = [await propose(client, {"data.target": f"target_{i}"}) for i in range(limit)]
        refused = await propose(client, {"data.target": "one_too_many"})
        again = await propose(client, {"data.target": "target_0"})
    assert all(r["approval_created"] for r in opened) and len(approvals(settings)) == limit
    assert "approval.pending_limit" in {d["rule_id"] for d in refused["denials"]} and "approval_id" not in refused
    assert f"already has {limit} pending approvals" in json.dumps(refused) and "no approval was opened" in refused["next_step"]
    assert again["approval_id"] == opened[0]["approval_id"] and again["approval_created"] is False
    other = load_settings(workspace, transport="memory", local_principal="codex-2", local_role="agent")
    async with connect(other) as client:
        assert (await propose(client, {"data.target": "one_too_many"}))["approval_created"] is True
    assert len(approvals(settings)) == limit + 1


async def test_approved_change_is_applied_once_and_logged_per_protected_field(alice_token: str, settings: Settings, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    changes = {"data.target": "churn", "split.test_size": 0.25, "model.params.max_depth": 5}
    async with connect(settings) as client:
        denied = await propose(client, changes)
        assert await cli("approvals", "approve", denied["approval_id"], "--workspace", str(workspace)) == 0
        applied = await propose(client, changes)
    assert "approved " + denied["approval_id"] in capsys.readouterr().out
    assert applied["decision"] == "allow" and applied["approval_id"] == denied["approval_id"] and applied["protected_overrides_logged"] == 2
    written = experiment(workspace)
    assert written["data"]["target"] == "churn" and written["split"]["test_size"] == 0.25
    log = [line.split("\t") for line in (workspace / "logs/protected_overrides.log").read_text().splitlines() if not line.startswith("#")]
    assert [(f, o, n, who, path, aid) for _, f, o, n, who, path, aid, _witness in log] == [
        ("data.target", '"default"', '"churn"', "alice", "configs/experiment.yaml", denied["approval_id"]),
        ("split.test_size", "0.2", "0.25", "alice", "configs/experiment.yaml", denied["approval_id"]),
    ]
    assert approvals(settings)[0]["status"] == "consumed"


async def test_an_approval_is_used_once(alice_token: str, settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        denied = await propose(client, {"data.target": "churn"})
        await cli("approvals", "approve", denied["approval_id"], "--workspace", str(workspace))
        await propose(client, {"data.target": "churn"})
        restored = await propose(client, {"data.target": "default"})
        again = await propose(client, {"data.target": "churn"})
    assert restored["decision"] == "allow"
    assert again["decision"] == "deny" and again["change_hash"] == denied["change_hash"] and again["approval_id"] != denied["approval_id"]


async def test_after_an_approved_override_unrelated_changes_stay_allowed(alice_token: str, settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        denied = await propose(client, {"data.target": "churn"})
        await cli("approvals", "approve", denied["approval_id"], "--workspace", str(workspace))
        await propose(client, {"data.target": "churn"})
        later = await propose(client, {"experiment.seed": 7})
    assert later["decision"] == "allow" and experiment(workspace)["data"]["target"] == "churn"


async def test_an_approval_does_not_cover_a_different_change(alice_token: str, settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        denied = await propose(client, {"data.target": "churn"})
        await cli("approvals", "approve", denied["approval_id"], "--workspace", str(workspace))
        before = snapshot(workspace)
        other = await propose(client, {"data.target": "churn", "experiment.seed": 1})
    assert other["decision"] == "deny" and other["approval_id"] != denied["approval_id"]
    assert snapshot(workspace) == before


async def test_a_denied_change_stays_denied(alice_token: str, settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        first = await propose(client, {"data.target": "churn"})
        assert await cli("approvals", "deny", first["approval_id"], "--workspace", str(workspace)) == 0
        again = await propose(client, {"data.target": "churn"})
    assert again["approval_id"] == first["approval_id"] and again["approval_status"] == "denied"
    assert "denied by alice" in again["reason"] and "different change" in again["remediation"]


async def test_a_line_written_into_the_overrides_log_by_hand_grants_nothing(settings: Settings, workspace: Path) -> None:
    log = workspace / "logs/protected_overrides.log"
    forged = '2026-01-01T00:00:00Z\tdata.target\t"default"\t"churn"\talice\tconfigs/experiment.yaml\tapr-0123456789ab\n'
    log.write_text(log.read_text() + forged)
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, {"data.target": "churn"})
    assert result["decision"] == "deny" and result["rule_id"] == "config.protected_fields"
    assert snapshot(workspace) == before and approvals(settings)[0]["status"] == "pending"


async def test_an_agent_cannot_approve_through_a_confirm_argument(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, {"data.target": "churn"}, confirm=True)
        approve = await client.call_tool("decide_approval", {"approval_id": "apr-0123456789ab", "decision": "approve"})
    assert result["rule_id"] == "input.schema" and "confirm" in result["reason"]
    assert approve.is_error and approve.structured_content["rule_id"] == "role.agents_cannot_approve"
    assert snapshot(workspace) == before and approvals(settings) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"data.positive_class": "1"}, "data.positive_class"),
        ({"split": {"strategy": "temporal_split", "test_size": 0.3}}, "split.test_size"),
        ({"split": {"strategy": "temporal_split", "train_end": "2021-01-01", "validation_end": "2022-01-01"}}, "split.test_size"),
        ("data.positive_class: !!str 1", "data.positive_class"),
        ({"evaluation": {"primary_metric": "pr_auc", "metrics": ["pr_auc", "roc_auc"], "bootstrap_samples": 200}}, "evaluation.primary_metric"),
    ],
)
async def test_protected_changes_through_types_and_parent_mappings_are_caught(settings: Settings, workspace: Path, changes: Any, field: str) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, changes)
    assert result["rule_id"] == "config.protected_fields" and field in result["reason"]
    assert snapshot(workspace) == before and [a["protected_fields"][0]["path"] for a in approvals(settings)] == [field]


async def test_hand_edited_protected_field_is_refused_until_restored(settings: Settings, workspace: Path) -> None:
    path = workspace / "configs/experiment.yaml"
    path.write_text(path.read_text().replace("target: default", "target: churn"))
    before = snapshot(workspace)
    async with connect(settings) as client:
        refused = await propose(client, {"experiment.seed": 7})
        restored = await propose(client, {"data.target": "default"})
    assert refused["rule_id"] == "config.no_unapproved_overrides" and '"data.target": "default"' in refused["remediation"]
    assert restored["decision"] == "allow" and experiment(workspace)["data"]["target"] == "default"
    assert before["configs/experiment.yaml"] != snapshot(workspace)["configs/experiment.yaml"] and approvals(settings) == []


# --- other rules --------------------------------------------------------------------------------


async def test_agents_must_give_reasoning(settings: Settings, workspace: Path) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        missing = await propose(client, {"experiment.seed": 7}, reasoning=None)
        thin = await propose(client, {"experiment.seed": 7}, reasoning={**REASONING, "expected_effect": "better"})
    assert missing["rule_id"] == thin["rule_id"] == "reasoning.required_for_agents"
    assert snapshot(workspace) == before


async def test_hypothesis_category_must_be_allowed_by_the_standards(settings: Settings) -> None:
    async with connect(settings) as client:
        result = await propose(client, {"experiment.seed": 7}, reasoning={**REASONING, "hypothesis_category": "vibes"})
    assert result["rule_id"] == "config.allowed_values" and "vibes" in result["reason"]


async def test_standards_edited_in_the_working_tree_deny_every_proposal(settings: Settings, workspace: Path) -> None:
    standards = workspace / "configs/project_standards.yaml"
    standards.write_text(standards.read_text().replace("data.target: default", "data.target: churn"))
    async with connect(settings) as client:
        result = await propose(client, {"data.target": "churn"})
    assert result["rule_id"] == "standards.no_drift" and "approval_id" not in result and approvals(settings) == []


# --- bad input: a clear error, nothing changed, no approval -----------------------------------

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": value}
    return value


async def test_a_list_index_in_a_path_is_refused_with_the_whole_list_form(settings: Settings, workspace: Path) -> None:
    async with connect(settings) as client:
        result = await propose(client, {"evaluation.metrics.0": "pr_auc"})
    assert result["rule_id"] == "input.changes" and "'evaluation.metrics.0'" in result["reason"]
    assert '{"evaluation.metrics": ["pr_auc", "roc_auc"]}' in result["remediation"]


@pytest.mark.parametrize(
    ("changes", "rule_id", "says"),
    [
        ({"model.params.max_dept": 6}, "config.schema_valid", "model.params.max_dept: unknown field"),
        ({"Data.Target": "churn"}, "config.schema_valid", "did you mean 'data'"),
        ({"data.Target": "churn"}, "config.schema_valid", "did you mean 'data.target'"),
        ("Data.Target: churn", "config.schema_valid", "did you mean 'data'"),
        ({"model.params.max_depth": "6"}, "config.schema_valid", "model.params.max_depth"),
        ({"experiment.seed": 4.0}, "config.schema_valid", "experiment.seed"),
        ({"features.use_protected_attributes": "false"}, "config.schema_valid", "features.use_protected_attributes"),
        ({"features.use_protected_attributes": 0}, "config.schema_valid", "features.use_protected_attributes"),
        ({"data.positive_class": True}, "config.schema_valid", "data.positive_class"),
        ({"features": {"exclude": ["income"]}}, "config.schema_valid", "features.use_protected_attributes: Field required"),
        ("features.use_protected_attributes: yes", "input.document", "ambiguous"),
        ("features.use_protected_attributes: 'no'", "config.schema_valid", "features.use_protected_attributes"),
        ("data.target: !!python/object/apply:os.system ['id']", "input.document", "tag"),
        ("experiment.seed: !!python/name:os.getpid", "input.document", "tag"),
        (BILLION_LAUGHS, "input.document", "anchor"),
        ("model.params.max_depth: 5\nmodel.params.max_depth: 6\n", "input.document", "duplicate key"),
        ("<<: {data.target: churn}\nexperiment.seed: 1\n", "input.document", "merge key"),
        ("base: &b {data.target: churn}\n<<: *b\n", "input.document", "anchor"),
        ("experiment.seed: 1\n---\ndata.target: churn\n", "input.document", "more than one document"),
        ("- data.target\n", "input.document", "must be a mapping"),
        ("experiment.name: " + "x" * 66000, "input.schema", "changes"),
        ("experiment.name: [" + "[" * 20 + "]" * 20 + "]", "input.document", "nesting deeper"),
        ({"model.params": nested(20)}, "input.document", "nesting deeper"),
        ({"experiment.name": "x" * 70000}, "input.changes", "byte cap"),
        ({"../configs/project_standards": 1}, "input.changes", "not dotted experiment.yaml paths"),
        ({"data": {"target": "default"}, "data.target": "churn"}, "input.changes", "overlap"),
        ({"experiment.seed.value": 1}, "input.changes", "experiment.seed is not a mapping"),
        ({}, "input.schema", "changes"),
        ("".join(f"model.params.k{i}: 1\n" for i in range(65)), "input.changes", "at most 64"),
        ([["data.target", "churn"]], "input.schema", "changes"),
        ('data.target: "\\ud800"', "input.document", "lone surrogate"),
        ('"a\\udcff": 1\n"a\\udcff": 2\n', "input.document", "lone surrogate"),
    ],
)
async def test_bad_input_gives_a_clear_error_and_changes_nothing(settings: Settings, workspace: Path, changes: Any, rule_id: str, says: str) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, changes)
    assert result["decision"] == "deny" and result["rule_id"] == rule_id, result
    assert says in result["reason"] and result["remediation"]
    json.dumps(result, ensure_ascii=False).encode()  # a reply every transport can send as UTF-8
    assert snapshot(workspace) == before and approvals(settings) == []


async def test_a_working_tree_config_with_python_tags_is_refused_and_left_alone(settings: Settings, workspace: Path) -> None:
    path = workspace / "configs/experiment.yaml"
    path.write_text(path.read_text() + "extra: !!python/object/apply:os.system ['touch pwned']\n")
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, {"experiment.seed": 7})
    assert result["rule_id"] == "input.document" and "working-tree configs/experiment.yaml" in result["reason"]
    assert "git checkout" in result["remediation"] and snapshot(workspace) == before and not (workspace / "pwned").exists()


async def test_the_tool_schema_documents_the_changes_contract(settings: Settings) -> None:
    async with connect(settings) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = tools["propose_config_change"].input_schema
    assert schema["additionalProperties"] is False and "dotted" in schema["properties"]["changes"]["description"]
    assert set(schema["properties"]) == {"changes", "reasoning", "dry_run"}


GH_TOKEN = "ghp_" + "A1b2C3d4E5" * 4
OPENAI_KEY = "sk-" + "a1B2c3D4" * 3


@pytest.mark.parametrize(
    ("changes", "reasoning"),
    [
        ({"experiment.name": GH_TOKEN}, REASONING),
        ({"model.params." + OPENAI_KEY: 1}, REASONING),
        ({"model.params." + GH_TOKEN: 1}, REASONING),
        (f"{GH_TOKEN}: 1\n{GH_TOKEN}: 2\n", REASONING),
        (f"model.params.max_depth: &{GH_TOKEN} 3\n", REASONING),
        (f"model.params.max_depth: 6\nexperiment.name: '{OPENAI_KEY}'\n", REASONING),
        ({"model.params.max_depth": 6}, {**REASONING, "change_description": f"Deeper trees, pushed with token {GH_TOKEN} to the remote"}),
    ],
    ids=["value", "bad-path", "unknown-path", "duplicate-yaml-key", "yaml-anchor", "yaml-value", "reasoning"],
)
async def test_a_credential_in_a_proposal_is_refused_never_echoed_recorded_or_written(settings: Settings, workspace: Path, changes: Any, reasoning: Any) -> None:
    before = snapshot(workspace)
    async with connect(settings) as client:
        result = await propose(client, changes, reasoning)
    assert result["decision"] == "deny" and result["rule_id"] in {"input.credential", "input.document"}, result
    assert "credential" in result["reason"] and result["remediation"]
    for shown in (json.dumps(result), settings.audit_path.read_text()):
        assert GH_TOKEN not in shown and OPENAI_KEY not in shown
    assert snapshot(workspace) == before and approvals(settings) == []
