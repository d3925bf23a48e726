"""query_reasoning: what the experiment history says about which changes work (read-only).

Three questions (seed 001 §7.2-7.3): the changes with the largest improvements of the primary
validation metric; per hypothesis category, how often runs confirmed their hypothesis; per project,
how many experiments it took to reach a target. Analyses live in tools/insights.py (pure).
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from pydantic import Field, model_validator

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.history import Scope, client_field, project_field, read_history, scope_field
from tools.insights import confirm_rates, experiments_to_target, top_improvements
from tools.run_views import primary_metric

Question = Literal["top_improvements", "confirm_rates_by_category", "experiments_to_target"]
Metric = Literal["roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "brier"]


class QueryReasoningInput(StrictInput):
    question: Question = Field(description="top_improvements: changes with the largest metric_delta; confirm_rates_by_category: how often each hypothesis category confirmed; experiments_to_target: experiments until a validation metric reached `target`.")
    scope: Scope = scope_field()
    client_name: str | None = client_field()
    project_name: str | None = project_field()
    metric: Metric | None = Field(None, description="Validation metric for experiments_to_target (default: the standards' primary metric).")
    target: float | None = Field(None, ge=-1e6, le=1e6, allow_inf_nan=False, description="Value to reach, for experiments_to_target (required there).")
    max_results: int = Field(10, ge=1, le=100, description="Rows of top_improvements (1-100).")

    @model_validator(mode="after")
    def _target_when_needed(self) -> QueryReasoningInput:
        if self.question == "experiments_to_target" and self.target is None:
            raise ValueError("experiments_to_target needs a target value")
        return self


async def gather(request: QueryReasoningInput, ctx: CallContext) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(read_history, request, ctx)


def answer(request: QueryReasoningInput, runs: list[dict[str, Any]], primary: str) -> list[dict[str, Any]]:
    if request.question == "top_improvements":
        return top_improvements(runs, primary, request.max_results)
    if request.question == "confirm_rates_by_category":
        return confirm_rates(runs)
    return experiments_to_target(runs, request.metric or primary, float(request.target))  # type: ignore[arg-type]


async def execute(request: QueryReasoningInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    rows = answer(request, facts["runs"], primary_metric(ctx.config["standards"]))
    return {"question": request.question, "scope": request.scope, "runs_read": len(facts["runs"]), "truncated": facts["truncated"], "rows": rows}


_RULES = load_all()
SPEC = ToolSpec(
    name="query_reasoning",
    title="Query the experiment history",
    description=(
        "What past experiments say (read-only, validation metrics only): the changes with the largest improvements, "
        "how often each hypothesis category confirmed, or how many experiments it took to reach a target. "
        "scope 'project' reads this project; 'all' (humans/operators with a token) every project in the store."
    ),
    input_model=QueryReasoningInput,
    rules=(_RULES["role.known"], _RULES["queries.cross_project"]),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
