"""The `experiment_briefing` prompt: the rules, the workflow and the modelling risk checklist,
with this project's standards (as committed on the protected ref) filled in.

The prose has one home, the workspace template's AGENTS.md.jinja: the prompt renders mlgate's own
copy of it (never the workspace's AGENTS.md, which an agent can edit) and appends the values in
force, taken from the same policy config every tool call is decided against.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


from resources.base import PromptSpec, ReadContext
from tools.errors import GovernanceError

BRIEFING_TEMPLATE = Path(__file__).resolve().parent.parent / "configs" / "template" / "AGENTS.md.jinja"
DESCRIPTION = (
    "Read first: how this governed project works (the governed tools, denials, protected fields, "
    "reasoning), the workflow, and the modelling risk checklist (missing data, leakage, temporal "
    "validation, class imbalance, protected attributes, PII, seeds), with this project's label, "
    "time column, protected attributes and gates."
)


def render_rules(standards: Mapping[str, Any]) -> str:
    """AGENTS.md.jinja rendered with the project's names. Raises jinja2 errors on a bad template."""
    names = {key: str(standards.get(key) or "this project") for key in ("client_name", "project_name")}
    from jinja2 import StrictUndefined  # noqa: PLC0415 - deferred: a slow import kept off server start (bench.cold_start)
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415

    environment = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return environment.from_string(BRIEFING_TEMPLATE.read_text(encoding="utf-8")).render(**names)


def _code(value: Any) -> str:
    """Values as the YAML/JSON an agent would write them (`false`, not `False`)."""
    if isinstance(value, (list, tuple)):
        return ", ".join(_code(item) for item in value) if value else "none"
    if value is None or value == "":
        return "none"
    return f"`{value if isinstance(value, str) else json.dumps(value)}`"


def _mapping_lines(values: Any) -> list[str]:
    if not isinstance(values, Mapping) or not values:
        return ["  - none"]
    return [f"  - `{key}`: {_code(value)}" for key, value in values.items()]


def _label_lines(standards: Mapping[str, Any]) -> list[str]:
    label = standards.get("label") if isinstance(standards.get("label"), Mapping) else {}
    time_column = standards.get("time_column")
    split_hint = "use `split.strategy: temporal_split`" if time_column else "no time column: stratified k-fold is the default"
    return [
        f"- Label: target {_code(label.get('target'))}, positive class {'any of ' if isinstance(label.get('positive_class'), list) else ''}{_code(label.get('positive_class'))}",
        f"- Time column: {_code(time_column)} ({split_hint})",
        f"- PII columns (masked in samples, never features): {_code(standards.get('pii_columns'))}",
        f"- Protected attributes (fairness slices, not features unless approved): {_code(standards.get('protected_attributes'))}",
    ]


def standards_section(config: Mapping[str, Any], ref: str) -> str:
    """The values in force, from the policy config (`standards`, `standards_sha256`, `standards_drift`)."""
    standards = config.get("standards") or {}
    lines = [f"## This project's standards (committed on `{ref}`, sha256 `{config.get('standards_sha256')}`)", ""]
    if config.get("standards_drift"):
        lines += [f"**Drift:** the working-tree copy of configs/project_standards.yaml differs from `{ref}`; the committed version below is the one in force.", ""]
    lines += _label_lines(standards)
    lines += ["- Protected fields (changing one needs a human approval):", *_mapping_lines(standards.get("protected_fields"))]
    lines += ["- Allowed values:", *_mapping_lines(standards.get("allowed"))]
    lines += ["- Gates:", *_mapping_lines(standards.get("gates"))]
    lines += _reasoning_lines((config.get("policy") or {}).get("reasoning"))
    return "\n".join(lines) + "\n"


def _reasoning_lines(minimum: Any) -> list[str]:
    """The minimum reasoning.required_for_agents holds agents to (configs/policy.yaml): the input
    schema accepts one character, so without this line the first denial is how an agent learns it."""
    if not isinstance(minimum, Mapping) or "min_chars" not in minimum:
        return []
    return [f"- Reasoning (agents): `change_description` and `expected_effect` of at least {minimum['min_chars']} characters and {minimum.get('min_words', 1)} distinct words each"]


def unavailable_section(error: GovernanceError) -> str:
    return f"## This project's standards\n\nUnavailable [{error.rule_id}]: {error.reason}. What to do: {error.remediation}\n"


def briefing(policy_config: Callable[[], Mapping[str, Any]], ref: str) -> str:
    """The whole briefing. Standards that cannot be read are reported in it, not hidden."""
    try:
        config = policy_config()
    except GovernanceError as exc:
        return render_rules({}) + "\n" + unavailable_section(exc)
    return render_rules(config.get("standards") or {}) + "\n" + standards_section(config, ref)


def _render(ctx: ReadContext) -> str:
    return briefing(ctx.ports.standards.policy_config, ctx.ports.settings.protected_ref)


SPECS = (PromptSpec("experiment_briefing", "Experiment briefing", DESCRIPTION, _render, requires=("standards",)),)
