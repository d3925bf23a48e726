"""tools/insights.py: the pure analyses behind query_reasoning and cost_report, on run records
shaped as the tracking adapter returns them."""

from __future__ import annotations

from typing import Any

from tools.insights import confirm_rates, cost_rollup, experiments_to_target, improvement, iso_week, top_improvements, totals

DAY_MS = 86_400_000
MONDAY_2026_11_30 = 1_795_996_800_000


def run(n: int, *, project: str = "bank_x/fraud", category: str = "feature_engineering", delta: float | None = 0.01, outcome: str | None = "confirmed", val: float | None = 0.7, tokens: int | None = 1000, cost: float | None = 0.5, principal: str = "codex", status: str = "FINISHED", kind: str = "experiment", day: int = 0, metric: str = "roc_auc") -> dict[str, Any]:
    client, name = project.split("/")
    params = {"reasoning.hypothesis_category": category, "reasoning.change_description": f"change {n}", "config.evaluation.primary_metric": metric}
    params.update({k: str(v) for k, v in (("tokens_used", tokens), ("estimated_cost", cost)) if v is not None})
    metrics = {k: v for k, v in (("metric_delta", delta), (f"val_{metric}", val)) if v is not None}
    tags = {"client_name": client, "project_name": name, "principal": principal, "mlgate.run_kind": kind, **({"outcome": outcome} if outcome else {})}
    return {"run_id": f"{n:032x}", "status": status, "start_time": MONDAY_2026_11_30 + day * DAY_MS + n, "params": params, "metrics": metrics, "tags": tags}


def test_top_improvements_rank_by_improvement_and_skip_reproductions_and_failures() -> None:
    runs = [run(1, delta=0.02), run(2, delta=0.05), run(3, delta=-0.01), run(4, delta=0.9, kind="reproduction"), run(5, delta=0.8, status="FAILED"), run(6, delta=None)]
    rows = top_improvements(runs, "roc_auc", 10)
    assert [r["run_id"][-1] for r in rows] == ["2", "1", "3"]
    assert rows[0]["change_description"] == "change 2" and rows[0]["hypothesis_category"] == "feature_engineering"


def test_a_loss_improves_downwards() -> None:
    assert improvement(-0.03, "log_loss") == 0.03 and improvement(-0.03, "roc_auc") == -0.03
    rows = top_improvements([run(1, delta=-0.02, metric="log_loss"), run(2, delta=0.01, metric="log_loss")], "roc_auc", 5)
    assert [r["run_id"][-1] for r in rows] == ["1", "2"] and rows[0]["improvement"] == 0.02


def test_top_improvements_are_capped() -> None:
    assert len(top_improvements([run(n) for n in range(1, 9)], "roc_auc", 3)) == 3


def test_confirm_rates_per_category_best_first() -> None:
    runs = [run(1, category="feature_engineering"), run(2, category="feature_engineering", outcome="negative"), run(3, category="hyperparameter_tuning"), run(4, category="model_family", outcome="neutral"), run(5, category="model_family", outcome=None)]
    rows = {r["hypothesis_category"]: r for r in confirm_rates(runs)}
    assert rows["hyperparameter_tuning"]["confirm_rate"] == 1.0
    assert (rows["feature_engineering"]["runs"], rows["feature_engineering"]["confirmed"], rows["feature_engineering"]["confirm_rate"]) == (2, 1, 0.5)
    assert (rows["model_family"]["runs"], rows["model_family"]["confirm_rate"]) == (1, 0.0)
    assert [r["hypothesis_category"] for r in confirm_rates(runs)][0] == "hyperparameter_tuning"


def test_experiments_to_target_counts_in_start_order_per_project() -> None:
    runs = [run(3, val=0.80, day=2), run(1, val=0.70, day=0), run(2, val=0.76, day=1), run(4, project="bank_y/churn", val=0.6)]
    rows = {r["project"]: r for r in experiments_to_target(runs, "roc_auc", 0.75)}
    assert (rows["bank_x/fraud"]["reached"], rows["bank_x/fraud"]["experiments_to_target"], rows["bank_x/fraud"]["run_id"]) == (True, 2, f"{2:032x}")
    assert (rows["bank_y/churn"]["reached"], rows["bank_y/churn"]["experiments_to_target"], rows["bank_y/churn"]["best"]) == (False, None, 0.6)


def test_a_loss_target_is_reached_at_or_below_it() -> None:
    runs = [run(1, val=0.5, metric="log_loss"), run(2, val=0.3, metric="log_loss", day=1)]
    (row,) = experiments_to_target(runs, "log_loss", 0.3)
    assert row["experiments_to_target"] == 2 and row["best"] == 0.3


def test_cost_rolls_up_per_agent_counting_runs_without_cost() -> None:
    runs = [run(1, principal="codex", tokens=1000, cost=0.5), run(2, principal="codex", tokens=500, cost=None, outcome="neutral"), run(3, principal="claude", tokens=2000, cost=2.0, status="FAILED", outcome=None)]
    rows = {r["agent"]: r for r in cost_rollup(runs, "agent")}
    assert rows["codex"] == {"agent": "codex", "runs": 2, "tokens_used": 1500, "estimated_cost": 0.5, "runs_without_cost": 1, "confirmed": 1, "cost_per_confirmed": 0.5}
    assert rows["claude"]["cost_per_confirmed"] is None and rows["claude"]["runs"] == 1
    assert [r["agent"] for r in cost_rollup(runs, "agent")] == ["claude", "codex"]
    assert totals(cost_rollup(runs, "agent")) == {"runs": 3, "tokens_used": 3500, "estimated_cost": 2.5}


def test_a_group_whose_runs_reported_no_cost_has_no_cost_per_confirmed_run() -> None:
    runs = [run(1, principal="claude", tokens=None, cost=None), run(2, principal="claude", tokens=None, cost=None, outcome="neutral")]
    (row,) = cost_rollup(runs, "agent")
    assert (row["confirmed"], row["runs_without_cost"], row["estimated_cost"], row["cost_per_confirmed"]) == (1, 2, 0.0, None)


def test_cost_per_iso_week_and_per_project() -> None:
    runs = [run(1, day=0), run(2, day=6), run(3, day=7), run(4, project="bank_y/churn", day=7)]
    weeks = {r["week"]: r["runs"] for r in cost_rollup(runs, "week")}
    assert weeks == {"2026-W49": 2, "2026-W50": 2}
    assert {r["project"]: r["runs"] for r in cost_rollup(runs, "project")} == {"bank_x/fraud": 3, "bank_y/churn": 1}
    assert iso_week(None) == "?"
