"""The run history a reasoning or cost query reads: this project's experiment, or every project of
the tracking store (filtered by client and project), newest runs first, capped by
configs/policy.yaml `queries.max_runs`. Shared by query_reasoning and cost_report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from tools.base import CallContext
from tools.run_views import experiment_of

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Scope = Literal["project", "all"]
SCOPE_DOC = "'project' (default): this project's runs. 'all': every project in the tracking store (humans and operators with a token only)."


def scope_field() -> Any:
    return Field("project", description=SCOPE_DOC)


def client_field() -> Any:
    return Field(None, pattern=NAME_PATTERN, description="With scope 'all': only projects of this client (client_name).")


def project_field() -> Any:
    return Field(None, pattern=NAME_PATTERN, description="With scope 'all': only projects with this project_name.")


def _wanted(name: str, client: str | None, project: str | None) -> bool:
    owner, _, own_project = name.partition("/")
    return (client is None or owner == client) and (project is None or own_project == project)


def experiment_ids(tracking: Any, standards: Mapping[str, Any], scope: str, client: str | None, project: str | None) -> list[str]:
    if scope == "project":
        own = experiment_of(tracking, standards)["id"]
        return [] if own is None else [own]
    return [e["id"] for e in tracking.experiments() if _wanted(e["name"], client, project)]


def read_history(request: Any, ctx: CallContext) -> dict[str, Any]:
    """Facts for the query rules and the analysis (blocking MLflow reads: run in a worker thread)."""
    tracking, standards = ctx.ports.tracking, ctx.config["standards"]
    limit = int(((ctx.config.get("policy") or {}).get("queries") or {}).get("max_runs", 5000))
    facts: dict[str, Any] = {"principal": ctx.principal, "scope": request.scope, "runs": [], "truncated": False}
    if request.scope == "all" and not (ctx.principal.is_human and ctx.principal.credential):
        return facts  # queries.cross_project denies; nothing of other projects is read first
    ids = experiment_ids(tracking, standards, request.scope, request.client_name, request.project_name)
    runs = tracking.search_runs(ids, "", ["attributes.start_time DESC"], limit + 1) if ids else []
    facts.update(runs=runs[:limit], truncated=len(runs) > limit, experiments=len(ids))
    return facts
