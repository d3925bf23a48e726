"""promote through the real server (in-memory MCP client): a real run trained in bwrap, a PR opened
by open_pr, the CAS re-verified, the MLflow registry on sqlite, approvals decided with the
`mlgate approvals approve` command, the audit chain."""

from __future__ import annotations

import json
from contextlib import nullcontext
from tempfile import TemporaryDirectory
from pathlib import Path
from typing import Any

import anyio
import pytest

from policies import Principal
from server.audit import verify
from server.cli import main
from tests.credentials import approver, use_token
from tests.tools.promotion_lab import MODEL, Lab, build_lab, call, clone_run, commit_params, foreign_clone, config_params, reset_registry, tampered
from tools.promote import promotion_hash
from tools.provenance import stable_json

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_lab(tmp_path_factory.mktemp("promote"))


@pytest.fixture(autouse=True)
def clean_registry(lab: Lab) -> None:
    reset_registry(lab)


def gates(content: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["gate"]: g for g in content["gate_receipt"]["gates"]}


def denied_by(content: dict[str, Any]) -> set[str]:
    return {d["rule_id"] for d in content.get("denials") or [content]}


def registered_versions(lab: Lab) -> list[Any]:
    return lab.client.search_model_versions(f"name='{MODEL}'")


async def as_human(name: str, lab: Lab, argv: list[str]) -> int:
    """`mlgate ...` run by a human at a terminal with their own token in MLGATE_TOKEN (its own event
    loop, like a process)."""
    with pytest.MonkeyPatch.context() as env:
        use_token(env, lab.settings.state_dir, name)
        return await anyio.to_thread.run_sync(main, argv)


async def as_candidate(lab: Lab, run_id: str) -> str:
    """Promote `run_id` to candidate (as the agent): a version becomes champion only from candidate."""
    failed, content = await call(lab, "promote", {"run_id": run_id})
    assert not failed, content
    return run_id


async def approve(lab: Lab, approval_id: str) -> int:
    """`mlgate approvals approve ID` as bob at a terminal."""
    return await as_human("bob", lab, ["approvals", "approve", approval_id, "--workspace", str(lab.workspace)])


def download_card(lab: Lab, run_id: str, scratch: Path) -> bytes:
    return Path(lab.client.download_artifacts(run_id, "model_card.json", str(scratch))).read_bytes()


async def test_agent_promotes_a_gated_run_to_candidate_with_a_model_card(lab: Lab, tmp_path: Path) -> None:
    failed, content = await call(lab, "promote", {"run_id": lab.run_id})
    assert not failed, content
    assert content["version"] == "1" and content["created"] is True and content["gate_receipt"]["passed"] is True
    assert {g["status"] for g in content["gate_receipt"]["gates"]} <= {"PASS", "SKIPPED"}
    assert lab.ports.registry.alias_version(MODEL, "candidate") == "1"
    tags = lab.client.get_model_version(MODEL, "1").tags
    assert tags["promoted"] == "true" and tags["promotion_timestamp"] == content["promotion_timestamp"]
    run = lab.ports.tracking.get_run(lab.run_id)
    assert tags["card.dataset_hash"] == lab.dataset_hash == run["params"]["dataset_content_hash"]
    assert tags["card.commit"] == run["params"]["git_commit"] and tags["card.uv_lock_sha256"] == run["params"]["uv_lock_sha256"]
    card = json.loads(download_card(lab, lab.run_id, tmp_path))
    assert {**card["metrics"]["validation"], **card["metrics"]["sealed_test"]} == run["metrics"] and card["approvals"] == []
    assert card["metrics"]["sealed_test"]["test_roc_auc"] == run["metrics"]["test_roc_auc"] and card["test_set"]["queries_of_this_dataset"] >= 2
    sealed = {g["gate"]: g for g in content["gate_receipt"]["gates"] if g["gate"] in ("min_primary_metric", "min_lift_over_baseline", "calibration_vs_prior")}
    assert all(g["observed"] is None and g["reason"].startswith("PASS: sealed") for g in sealed.values()), sealed
    assert str(round(run["metrics"]["test_roc_auc"], 4)) not in json.dumps(content)
    assert card["intended_use"] and any("held-out rows" in line for line in card["limitations"])


async def test_the_model_card_artifact_is_stable_json(lab: Lab, tmp_path: Path) -> None:
    await call(lab, "promote", {"run_id": lab.run_id})
    data = download_card(lab, lab.run_id, tmp_path)
    assert data == stable_json(json.loads(data)).encode()


async def test_promoting_the_same_run_twice_creates_one_version(lab: Lab) -> None:
    first = (await call(lab, "promote", {"run_id": lab.run_id}))[1]
    failed, second = await call(lab, "promote", {"run_id": lab.run_id})
    assert not failed and second["version"] == first["version"] == "1"
    assert second["created"] is False and second["changed"] is False
    assert len(registered_versions(lab)) == 1 and lab.ports.registry.stack(MODEL, "candidate") == ["1"]


async def test_dry_run_returns_the_receipt_and_registers_nothing(lab: Lab) -> None:
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
    assert not failed and content["dry_run"] is True and content["would_register"] is True
    assert gates(content)["dataset_verified"]["status"] == "PASS"
    assert registered_versions(lab) == []


async def test_the_receipt_names_the_rows_and_positive_labels_the_test_metrics_rest_on(lab: Lab) -> None:
    metrics = lab.ports.tracking.get_run(lab.run_id)["metrics"]
    content = (await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True}))[1]
    assert content["test_window"] == {"rows": int(metrics["split_test_rows"]), "positives": int(metrics["split_test_positives"])}
    assert 0 < content["test_window"]["positives"] < content["test_window"]["rows"]


def _failing_run(lab: Lab, gate: str) -> str:
    """A real run that fails exactly `gate` (a clone of the lab run with one thing changed)."""
    variants: dict[str, dict[str, Any]] = {
        "run_succeeded": {"status": "FAILED"},
        "run_clean": {"params": {"git_dirty": "true"}},
        "model_logged": {"model": False},
        "commit_on_pr_branch": {"params": commit_params(lab, lab.run_id, lab.no_pr_commit)},
        "dataset_verified": {"params": {"dataset_content_hash": lab.spare_hash}},
        "protected_fields": {"params": config_params(lab, lab.run_id, split__test_size=0.3)},
        "standards_current": {"params": {"standards_sha256": "0" * 64}},
        "min_primary_metric": {"metrics": {"test_roc_auc": 0.6, "baseline_logistic_regression_roc_auc": 0.55}},
        # the lift gate reads the paired lower bound of the lift on the same test rows
        "min_lift_over_baseline": {"metrics": {"baseline_logistic_regression_roc_auc": 0.95, "test_baseline_paired": -0.2, "test_baseline_paired_lcb": -0.25}},
    }
    return clone_run(lab, lab.run_id, **variants[gate])


@pytest.mark.parametrize(
    "gate",
    ["run_succeeded", "run_clean", "model_logged", "commit_on_pr_branch", "dataset_verified", "protected_fields", "standards_current", "min_primary_metric", "min_lift_over_baseline"],
)
async def test_a_failing_gate_denies_with_the_receipt_and_registers_nothing(lab: Lab, gate: str) -> None:
    run_id = _failing_run(lab, gate)
    with tampered(lab, lab.spare_hash) if gate == "dataset_verified" else nullcontext():
        failed, content = await call(lab, "promote", {"run_id": run_id})
    assert failed and content["decision"] == "deny"
    assert denied_by(content) == {f"promotion.{gate}"}, content
    receipt = gates(content)
    assert receipt[gate]["status"] == "FAIL" and content["gate_receipt"]["passed"] is False
    assert [g for g, e in receipt.items() if e["status"] == "FAIL"] == [gate]
    assert registered_versions(lab) == [] and lab.ports.registry.alias_version(MODEL, "candidate") is None


async def test_a_run_trailing_the_champion_beyond_tolerance_is_denied(lab: Lab) -> None:
    better = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.99})
    version = lab.ports.registry.register(MODEL, better, lab.ports.tracking.get_run(better)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": better, "by": "test"})
    failed, content = await call(lab, "promote", {"run_id": lab.run_id})
    assert failed and denied_by(content) == {"promotion.champion_tolerance"}
    assert gates(content)["champion_tolerance"]["observed"] is None  # an agent learns FAIL, not the sealed figures
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True}, lab.human())
    observed = gates(content)["champion_tolerance"]["observed"]
    assert observed == pytest.approx(lab.ports.tracking.get_run(lab.run_id)["metrics"]["test_roc_auc"] - 0.99, abs=1e-6)
    assert "the champion was measured on other rows of this dataset" in gates(content)["champion_tolerance"]["reason"]


async def test_a_champion_measured_on_another_dataset_is_compared_by_point_estimates_and_the_receipt_says_so(lab: Lab) -> None:
    """A new data version has another test window: the champion's figure is not one on the same rows."""
    older = clone_run(lab, lab.run_id, params={"dataset_content_hash": "f" * 64}, metrics={"test_roc_auc": 0.5})
    version = lab.ports.registry.register(MODEL, older, lab.ports.tracking.get_run(older)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": older, "by": "test"})
    _, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True}, lab.human())
    entry = gates(content)["champion_tolerance"]
    assert entry["status"] == "PASS" and "the champion was measured on another dataset (ffffffffffff)" in entry["reason"], entry
    assert "not a paired comparison on the same rows" in entry["reason"]
    _, content = await call(lab, "promote", {"run_id": lab.run_id, "dry_run": True})
    assert "ffffffffffff" not in json.dumps(content)  # the agent's receipt stays sealed


async def test_a_run_of_another_project_in_the_store_is_not_promoted_under_this_projects_model(lab: Lab) -> None:
    """A copy of this project's passing run, in another project's experiment of a shared store:
    refused before any gate is judged or any test-set query counted."""
    foreign, before = foreign_clone(lab, lab.run_id), lab.ports.test_queries.count(lab.dataset_hash)
    for dry_run in (True, False):
        failed, content = await call(lab, "promote", {"run_id": foreign, "dry_run": dry_run})
        assert failed and content["rule_id"] == "runs.same_project" and "gate_receipt" not in content, content
    assert lab.ports.registry.version_for_run(MODEL, foreign) is None
    assert lab.ports.test_queries.count(lab.dataset_hash) == before


async def test_agents_cannot_set_champion(lab: Lab) -> None:
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "alias": "champion"})
    assert failed and "role.agents_cannot_set_champion" in denied_by(content)
    assert "approval_id" not in content and lab.ports.approvals.list() == []


async def test_champion_needs_a_reproduction_and_the_seed_check(lab: Lab) -> None:
    never_reproduced = await as_candidate(lab, clone_run(lab, lab.run_id))
    failed, content = await call(lab, "promote", {"run_id": never_reproduced, "alias": "champion"}, lab.human())
    assert failed and {"promotion.reproduced", "promotion.max_seed_variance"} <= denied_by(content)
    # the approval opens at once (review can start), and the denial says what else must pass
    assert content["approval_status"] == "pending" and "promotion.reproduced" in content["next_step"]


async def test_a_run_that_never_was_a_candidate_cannot_become_champion(lab: Lab) -> None:
    run_id = with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8))
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and "lifecycle.transition" in denied_by(content) and "approval_id" not in content
    assert lab.ports.registry.alias_version(MODEL, "champion") is None


async def test_an_archived_version_retagged_candidate_outside_mlgate_cannot_become_champion(lab: Lab) -> None:
    run_id = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8)))
    version = lab.ports.registry.version_for_run(MODEL, run_id)
    await as_candidate(lab, clone_run(lab, lab.run_id))
    lab.ports.registry.archive(MODEL, version, {"by": "carol"})
    lab.client.set_model_version_tag(MODEL, version, "mlgate.stage", "candidate")  # the forgery
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and "lifecycle.stage_recorded" in denied_by(content) and "approval_id" not in content
    assert lab.ports.registry.alias_version(MODEL, "champion") is None


def with_reproduction(lab: Lab, run_id: str, seed_values: tuple[float, float], *, seeds: tuple[int, int] = (43, 44), by_reproduce: bool = True) -> str:
    """Record on `run_id` a same-seed re-run and two seed re-runs (clones) with these metrics, made
    by reproduce (its params say so) unless `by_reproduce` is False: then only MLflow tags say so."""

    def made_as(kind: str) -> dict[str, str]:
        return {"reproduction_of": run_id, "reproduction_kind": kind} if by_reproduce else {}

    rerun = clone_run(lab, run_id, params=made_as("same_seed"), tags={"mlgate.reproduction_of": run_id})
    seed_runs = [clone_run(lab, run_id, params={"seed": str(s), **config_params(lab, run_id, experiment__seed=s), **made_as("seed")}, metrics={"test_roc_auc": v}, tags={"mlgate.reproduction_of": run_id})
                 for s, v in zip(seeds, seed_values, strict=True)]  # fmt: skip
    lab.ports.tracking.set_tags(run_id, {"reproduced": "true", "mlgate.reproduction_run_id": rerun, "mlgate.seed_run_ids": ",".join(seed_runs)})
    return run_id


async def test_champion_whose_metric_swings_with_the_seed_is_denied(lab: Lab) -> None:
    run_id = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.55, 0.99)))
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.max_seed_variance", "promotion.human_approval"}
    assert gates(content)["reproduced"]["status"] == "PASS" and "promotion.max_seed_variance" in content["next_step"]
    entry = gates(content)["max_seed_variance"]
    assert entry["observed"]["seeds"] == [42, 43, 44] and entry["observed"]["variance"] > entry["threshold"]


async def test_a_seed_run_of_another_run_does_not_count(lab: Lab) -> None:
    run_id = with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8))
    stranger = clone_run(lab, lab.run_id, params={"seed": "45", **config_params(lab, run_id, experiment__seed=45)})
    seeds = lab.ports.tracking.get_run(run_id)["tags"]["mlgate.seed_run_ids"].split(",")
    lab.ports.tracking.set_tags(run_id, {"mlgate.seed_run_ids": f"{seeds[0]},{stranger}"})
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and "promotion.max_seed_variance" in denied_by(content)
    assert "not a seed re-run reproduce made of this run" in gates(content)["max_seed_variance"]["reason"]


async def test_runs_only_tagged_as_its_reproduction_and_seed_runs_do_not_count(lab: Lab) -> None:
    # The agent's own runs of the same pins, with the MLflow tags reproduce writes added by hand.
    run_id = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8), by_reproduce=False))
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and {"promotion.reproduced", "promotion.max_seed_variance"} <= denied_by(content)
    assert "reproduction_of" in gates(content)["reproduced"]["reason"]
    assert "not a seed re-run reproduce made of this run" in gates(content)["max_seed_variance"]["reason"]


async def test_seed_runs_with_seeds_other_than_the_next_ones_do_not_count(lab: Lab) -> None:
    run_id = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8), seeds=(50, 51)))
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and "promotion.max_seed_variance" in denied_by(content) and gates(content)["reproduced"]["status"] == "PASS"
    assert "has seed 50, not the next seed 43" in gates(content)["max_seed_variance"]["reason"]


async def test_a_seed_counted_twice_counts_once(lab: Lab) -> None:
    run_id = with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8))
    seeds = lab.ports.tracking.get_run(run_id)["tags"]["mlgate.seed_run_ids"].split(",")
    lab.ports.tracking.set_tags(run_id, {"mlgate.seed_run_ids": f"{seeds[0]},{seeds[0]}"})
    failed, content = await call(lab, "promote", {"run_id": run_id, "alias": "champion"}, lab.human())
    assert failed and "promotion.max_seed_variance" in denied_by(content)
    assert "repeats seed 43" in gates(content)["max_seed_variance"]["reason"]


async def test_champion_without_approval_is_denied_and_with_approval_is_allowed(lab: Lab) -> None:
    failed, reproduced = await call(lab, "reproduce", {"run_id": lab.run_id})
    assert not failed and reproduced["reproduced"] is True, reproduced
    await as_candidate(lab, lab.run_id)
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.human_approval"}
    approval_id = content["approval_id"]
    assert content["approval_status"] == "pending" and approval_id in content["next_step"]
    assert await approve(lab, approval_id) == 0
    failed, content = await call(lab, "promote", {"run_id": lab.run_id, "alias": "champion"}, lab.human())
    assert not failed, content
    assert lab.ports.registry.alias_version(MODEL, "champion") == content["version"]
    assert lab.ports.approvals.get(approval_id)["status"] == "consumed"
    assert content["stage_changes"] == [{"version": content["version"], "from": "candidate", "to": "champion"}]
    assert json.loads(lab.client.get_model_version(MODEL, content["version"]).tags["card.approvals"])[0]["decided_by"] == "bob"
    outcome = [r for r in lab.ports.audit.tail(20) if r.get("tool") == "promote" and r.get("kind") == "outcome"][-1]
    assert outcome["status"] == "ok" and outcome["approval_id"] == approval_id and outcome["run_id"] == lab.run_id
    assert verify(lab.settings.audit_path).ok


async def test_an_approval_is_bound_to_its_run(lab: Lab) -> None:
    approved, _ = lab.ports.approvals.request(
        change_hash=promotion_hash(MODEL, lab.run_id, "champion", None), target=f"{MODEL}@champion", diff=[], fields=[],
        requester=Principal("alice", "human"), reasoning=None, now="2026-01-01T00:00:00Z", kind="promotion",
    )  # fmt: skip
    lab.ports.approvals.decide(approved["id"], approve=True, approver=approver(lab.settings.state_dir, "bob"), note=None, now="2026-01-01T00:01:00Z")
    other = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8)))
    failed, content = await call(lab, "promote", {"run_id": other, "alias": "champion"}, lab.human())
    assert failed and denied_by(content) == {"promotion.human_approval"}
    assert content["approval_id"] != approved["id"] and content["approval_status"] == "pending"
    assert lab.ports.registry.alias_version(MODEL, "champion") is None


async def test_rollback_after_two_promotions_restores_the_previous_candidate(lab: Lab) -> None:
    first = (await call(lab, "promote", {"run_id": lab.run_id}))[1]
    better = clone_run(lab, lab.run_id, metrics={"test_roc_auc": 0.9})
    failed, second = await call(lab, "promote", {"run_id": better})
    assert not failed and second["previous_version"] == first["version"] and second["version"] == "2"
    command = ["rollback", MODEL, "--alias", "candidate", "--workspace", str(lab.workspace)]
    assert await as_human("carol", lab, command) == 0
    assert lab.ports.registry.alias_version(MODEL, "candidate") == first["version"]
    failed, again = await call(lab, "promote", {"run_id": better})
    assert not failed and again["version"] == "2" and again["created"] is False and again["changed"] is True


async def test_a_human_promotes_to_champion_at_the_terminal_and_a_second_human_approves(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = await as_candidate(lab, with_reproduction(lab, clone_run(lab, lab.run_id), (0.8, 0.8)))
    command = ["promote", run_id, "--alias", "champion", "--workspace", str(lab.workspace)]
    assert await as_human("alice", lab, command) == 2
    refusal = capsys.readouterr().err
    (approval,) = [a for a in lab.ports.approvals.list() if a["kind"] == "promotion" and a["status"] == "pending"]
    assert f"approval {approval['id']} is pending" in refusal and "FAIL    human_approval" in refusal
    # four-eyes: whoever opened it cannot approve it
    assert await as_human("alice", lab, ["approvals", "approve", approval["id"], "--workspace", str(lab.workspace)]) == 2
    assert await approve(lab, approval["id"]) == 0
    assert await as_human("alice", lab, command) == 0
    assert "champion -> version" in capsys.readouterr().out
    assert lab.ports.registry.alias_version(MODEL, "champion") == lab.ports.registry.version_for_run(MODEL, run_id)
    assert lab.ports.approvals.get(approval["id"])["status"] == "consumed"


async def test_the_terminal_promote_needs_a_human_token(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLGATE_TOKEN", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    code = await anyio.to_thread.run_sync(main, ["promote", lab.run_id, "--workspace", str(lab.workspace)])
    assert code == 2 and lab.ports.registry.alias_version(MODEL, "champion") is None


def with_predictions(lab: Lab, run_id: str, source: str, scramble: bool) -> str:
    """Log `source`'s test predictions on `run_id` (a clone made with vouch=False), its scores
    shuffled across rows if `scramble`; then chain its metrics and artifacts as run_experiment does."""
    import numpy as np
    import pandas as pd

    with TemporaryDirectory() as scratch:
        frame = pd.read_parquet(lab.client.download_artifacts(source, "test_predictions.parquet", scratch))
        if scramble:
            frame["score"] = np.random.default_rng(0).permutation(frame["score"].to_numpy())
        path = Path(scratch) / "test_predictions.parquet"
        frame.to_parquet(path, index=False)
        lab.client.log_artifact(run_id, str(path))
    run = lab.ports.tracking.get_run(run_id)
    lab.ports.run_metrics.record(run_id, run["metrics"], run["params"])
    return run_id


async def test_the_champion_gate_compares_the_two_models_on_the_same_rows_not_their_point_estimates(lab: Lab) -> None:
    version = lab.ports.registry.register(MODEL, lab.run_id, lab.ports.tracking.get_run(lab.run_id)["artifact_uri"], {})
    lab.ports.registry.point(MODEL, "champion", version, {"run_id": lab.run_id, "by": "test"})
    # the same logged test_roc_auc as the champion (the point estimates tie), but scores that rank
    # the champion's rows at random: on the same rows it plainly trails
    challenger = with_predictions(lab, clone_run(lab, lab.run_id, vouch=False), lab.run_id, scramble=True)
    failed, content = await call(lab, "promote", {"run_id": challenger, "dry_run": True}, lab.human())
    entry = gates(content)["champion_tolerance"]
    assert failed and entry["status"] == "FAIL" and "paired bootstrap" in entry["reason"]
    assert entry["observed"]["lower_bound"] < -0.005 and entry["observed"]["confidence"] == 0.95
    twin = with_predictions(lab, clone_run(lab, lab.run_id, vouch=False), lab.run_id, scramble=False)
    failed, content = await call(lab, "promote", {"run_id": twin, "dry_run": True}, lab.human())
    assert gates(content)["champion_tolerance"]["status"] == "PASS" and gates(content)["champion_tolerance"]["observed"]["improvement"] == 0


async def test_the_model_card_resource_shows_an_agent_no_test_figures_and_a_human_all_of_them(lab: Lab) -> None:
    from mcp import Client

    from server.app import build_server

    failed, _ = await call(lab, "promote", {"run_id": lab.run_id})
    assert not failed
    test_auc = lab.ports.tracking.get_run(lab.run_id)["metrics"]["test_roc_auc"]
    cards = {}
    for who, settings in (("agent", lab.settings), ("human", lab.human())):
        async with Client(build_server(settings, lab.ports)) as client:
            cards[who] = json.loads((await client.read_resource(f"mlgate://models/{MODEL}/card")).contents[0].text)["card"]
    assert str(round(test_auc, 6)) not in json.dumps(cards["agent"]) and cards["agent"]["metrics"]["sealed_test"].startswith("the test set is sealed")
    assert cards["human"]["metrics"]["sealed_test"]["test_roc_auc"] == test_auc and cards["human"]["test_set"]["queries_of_this_dataset"] >= 1
