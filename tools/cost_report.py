"""cost_report: agent tokens and estimated cost, per project, per agent or per ISO week (read-only).

Reads the Tier 3 params every run_experiment call may carry (`tokens_used`, `estimated_cost`);
runs that reported no cost are counted as such, never as free.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from pydantic import Field

from policies.registry import load_all
from tools.base import CallContext, StrictInput, ToolSpec
from tools.history import Scope, client_field, project_field, read_history, scope_field
from tools.insights import cost_rollup, totals


class CostReportInput(StrictInput):
    group_by: Literal["project", "agent", "week"] = Field("week", description="Group runs by project (client/project), by agent principal, or by ISO week of their start.")
    scope: Scope = scope_field()
    client_name: str | None = client_field()
    project_name: str | None = project_field()


async def gather(request: CostReportInput, ctx: CallContext) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(read_history, request, ctx)


async def execute(request: CostReportInput, facts: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    rows = cost_rollup(facts["runs"], request.group_by)
    return {"group_by": request.group_by, "scope": request.scope, "runs_read": len(facts["runs"]), "truncated": facts["truncated"], "rows": rows, "total": totals(rows)}


_RULES = load_all()
SPEC = ToolSpec(
    name="cost_report",
    title="Report agent tokens and cost",
    description=(
        "Tokens and estimated cost of runs (the tokens_used / estimated_cost given to run_experiment), grouped by "
        "project, agent or ISO week, with runs that reported no cost counted and cost per confirmed run. Read-only; "
        "scope 'all' (humans/operators with a token) covers every project in the tracking store."
    ),
    input_model=CostReportInput,
    rules=(_RULES["role.known"], _RULES["queries.cross_project"]),
    gather=gather,
    execute=execute,
    read_only=True,
    idempotent=True,
)
