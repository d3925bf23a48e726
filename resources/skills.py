"""Skills as MCP prompts (seed 001 §7.7): concrete procedures through mlgate's tools for the three
things agents do most: try a new feature, search hyperparameters, compare models.

Each prompt is one user message: numbered steps naming the exact tool calls, filled in with this
project's values as committed on the protected ref (primary metric, allowed model types and
hypothesis categories, gates). The rules themselves stay in the experiment briefing; a skill says
what to do, in which order, and when to stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resources.base import PromptSpec, ReadContext
from tools.errors import GovernanceError


def _values(standards: Mapping[str, Any]) -> dict[str, str]:
    allowed = standards.get("allowed") or {}
    gates = standards.get("gates") or {}
    return {
        "metric": str(gates.get("primary_metric") or "roc_auc"),
        "floor": str(gates.get("min_primary_metric", "the standards' floor")),
        "models": ", ".join(map(str, allowed.get("model_types") or [])) or "the allowed model types",
        "categories": ", ".join(map(str, allowed.get("hypothesis_categories") or [])) or "the allowed categories",
    }


NEW_FEATURE = """# Skill: try a new feature

Goal: find out whether one feature-engineering idea improves validation {metric}, with a record a
stranger can re-derive.

1. Call `load_dataset(content_hash)` and read `quality`: nulls, ranges, duplicates, class balance and
   which standards columns exist. Decide how the feature treats missing values before writing it.
2. Write the feature in `src/features.py` only (the one agent-editable code file). It must not read
   the label, the time column's future, PII columns or protected attributes; it runs per split, so
   fit nothing on all rows.
3. Commit the change on a feature branch (never on main): dirty runs cannot be promoted.
4. Call `propose_config_change(changes, reasoning)` with `hypothesis_category: feature_engineering`,
   a `change_description` naming the feature and an `expected_effect` on validation {metric}.
   Use `dry_run: true` first if unsure; a denial names the rule and the fix.
5. Call `run_experiment(reasoning=..., tokens_used=..., estimated_cost=...)`. Read `outcome`
   (confirmed / neutral / negative against the best prior run), `metric_delta`, the CI, any
   `leakage` flag and the fairness slices. A leakage flag means the feature leaks: remove it.
6. Neutral or negative: say so and stop, or form a new hypothesis. Do not re-run the same idea with
   other seeds hoping for a better number.
7. Confirmed: `open_pr(run_id, title)`; then `promote(run_id, alias="candidate")` if it clears the
   floor of {floor}. A champion needs a human.
"""

HYPERPARAMETER_SEARCH = """# Skill: search hyperparameters

Goal: a better validation {metric} for one model type ({models}) with a bounded, recorded search.

1. Call `list_runs(sort_by="{metric}")` and `get_run(run_id)` on the best run: start from its config.
2. Choose at most 3 parameters and a small grid (3-5 values each, at most 12 runs in all). Write the
   grid in your `change_description` before the first run, so the search is declared, not adaptive.
3. For each point: `run_experiment(config={{"model.params.<name>": value}}, reasoning={{"hypothesis_category":
   "hyperparameter_tuning", ...}})`. `config` applies to that run only; protected fields cannot be
   changed this way (they need a human approval via `propose_config_change`).
4. Keep the seed fixed across the grid; differences then come from the parameters.
5. Compare with `compare_runs(run_ids)` (2-5 runs at a time): the best run and whether its CI
   overlaps the others'. Overlapping CIs mean "no evidence of a difference": prefer the simpler model.
6. Record the winner with `propose_config_change` (so experiment.yaml holds it), commit, run it once
   more with `run_experiment`, then `open_pr`.
7. Stop when the grid is done. Test metrics are sealed: the selection uses validation rows only.
"""

MODEL_COMPARISON = """# Skill: compare model families

Goal: decide between model types ({models}) on the same data, split and seed.

1. Fix the data and split: same `content_hash`, same `split` config, same seed for every candidate.
2. For each model type, one `run_experiment(config={{"model.type": "<type>"}}, reasoning={{"hypothesis_category":
   "model_family", ...}})` with default parameters first; tune only the front-runners afterwards.
3. `compare_runs(run_ids)`: read validation {metric} with CIs, the baselines (logistic regression and
   class prior), calibration, and the fairness slices of each run.
4. Prefer the simpler model unless the better one's CI clears it; a model that wins on {metric} but
   widens a fairness gap needs a human's judgement: say so in the PR.
5. `query_reasoning(question="confirm_rates_by_category")` shows how often `model_family` hypotheses
   confirmed here before; use it to set expectations, not to pick the model.
6. Open one PR for the chosen run with `open_pr`, naming the runs compared and why the winner won.

Hypothesis categories allowed here: {categories}.
"""

SKILLS = {"new_feature": NEW_FEATURE, "hyperparameter_search": HYPERPARAMETER_SEARCH, "model_comparison": MODEL_COMPARISON}


def render_skill(name: str, ctx: ReadContext) -> str:
    try:
        standards = ctx.ports.standards.policy_config().get("standards") or {}
    except GovernanceError:
        standards = {}
    return SKILLS[name].format(**_values(standards))


def _spec(name: str, title: str, description: str) -> PromptSpec:
    return PromptSpec(name, title, description, lambda ctx: render_skill(name, ctx), requires=("standards",))


SPECS = (
    _spec("new_feature", "Skill: try a new feature", "Step by step: test one feature-engineering idea through load_dataset, propose_config_change, run_experiment, open_pr and promote."),
    _spec("hyperparameter_search", "Skill: search hyperparameters", "Step by step: a declared, bounded grid over one model type with run_experiment and compare_runs."),
    _spec("model_comparison", "Skill: compare model families", "Step by step: model types on the same data, split and seed, compared with CIs, baselines and fairness slices."),
)
