"""Rules over a training run (DESIGN §4-§5): determinism, leakage, features, torch batch
arithmetic and the sandbox. Facts are a `RunFacts`-like mapping gathered by run_experiment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.data import is_named, is_pii, named_columns
from policies.decision import Decision, rule

SOURCE = "DESIGN.md §4-§5, issue 4"


@rule("training.seed_set", source=SOURCE, description="Every run sets an integer seed (experiment.seed).")
def seed_set(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    seed = facts["config"]["experiment"].get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        return Decision.allow("training.seed_set", f"seed {seed}")
    return Decision.deny("training.seed_set", "experiment.seed is not a non-negative integer", "set experiment.seed with propose_config_change")


def _time_look_alikes(facts: Mapping[str, Any], time_column: str) -> list[str]:
    """The dataset's columns that are the time column by column_key but spelled otherwise."""
    return [c for c in named_columns(facts["dataset_columns"], time_column) if c != time_column]


@rule(
    "training.temporal_split_when_time",
    source=SOURCE,
    description=(
        "Data that has the standards' time column, in any spelling with its column_key, is validated with temporal_split "
        "(no look-ahead leakage); a temporal split needs it under its exact name."
    ),
)
def temporal_split_when_time(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    time_column = config["standards"].get("time_column")
    strategy = facts["config"]["split"]["strategy"]
    spelled = _time_look_alikes(facts, time_column) if time_column else []
    if not time_column or strategy == "temporal_split" or (time_column not in facts["dataset_columns"] and not spelled):
        return Decision.allow("training.temporal_split_when_time", f"split {strategy}")
    if time_column in facts["dataset_columns"]:
        return Decision.deny(
            "training.temporal_split_when_time",
            f"the dataset has the time column {time_column!r} but the split is {strategy}: later rows would train a model scored on earlier ones",
            "propose split.strategy: temporal_split (with its windows) via propose_config_change",
        )
    return _look_alike_time(time_column, spelled, strategy)


def _look_alike_time(time_column: str, spelled: list[str], strategy: str) -> Decision:
    """The denial when the time column is there only in another spelling: a random split must not
    pass for want of the exact name, and the temporal split cannot be made until it is renamed."""
    return Decision.deny(
        "training.temporal_split_when_time",
        f"the dataset has {', '.join(map(repr, spelled))}, the time column {time_column!r} in another spelling, but the split is {strategy}: "
        "later rows would train a model scored on earlier ones, and a temporal split reads the time column by its exact name",
        f"ask the operator to re-import the data with {spelled[0]!r} renamed to {time_column!r} (mlgate data add), or to set time_column "
        f"to {spelled[0]!r} in the standards (mlgate standards set); then propose split.strategy: temporal_split via propose_config_change",
    )


@rule("training.no_pii_features", source=SOURCE, description="PII columns from the standards are never features.")
def no_pii_features(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    pii = config["standards"].get("pii_columns") or []
    leaked = sorted(c for c in set(facts["feature_columns"]) if is_pii(c, pii))  # any case, stray spaces
    if not leaked:
        return Decision.allow("training.no_pii_features", "no PII column among the features")
    return Decision.deny("training.no_pii_features", f"PII columns would be features: {leaked}", "PII columns are excluded by the server; report this to the operator")


@rule(
    "training.protected_attributes_excluded",
    source=SOURCE,
    description="Protected attributes are not features unless features.use_protected_attributes was approved.",
)
def protected_attributes_excluded(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    protected = config["standards"].get("protected_attributes") or []
    used = sorted(c for c in set(facts["feature_columns"]) if is_named(c, protected))  # any case, look-alike spellings
    approved = facts["config"]["features"].get("use_protected_attributes") is True and facts.get("protected_override_approved") is True
    if not used or approved:
        return Decision.allow("training.protected_attributes_excluded", "protected attributes handled per standards")
    return Decision.deny(
        "training.protected_attributes_excluded",
        f"protected attributes would be features without an approved override: {used}",
        "leave features.use_protected_attributes false, or ask a human to approve the override",
    )


@rule(
    "training.effective_batch_size",
    source=SOURCE,
    description="torch runs declare batch_size (or auto) and grad_accum_steps; their product is the effective batch size.",
)
def effective_batch_size(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    model = facts["config"]["model"]
    if model["type"] != "torch_mlp":
        return Decision.allow("training.effective_batch_size", "not a torch run")
    params = model.get("params") or {}
    batch, accum = params.get("batch_size"), params.get("grad_accum_steps")
    declared = params.get("effective_batch_size", None)
    if isinstance(batch, int) and isinstance(accum, int) and batch > 0 and accum > 0 and declared in (None, batch * accum):
        return Decision.allow("training.effective_batch_size", f"effective batch size {batch * accum}")
    # auto: the child picks the batch for its device (training.spec) and reports the size it used.
    if batch == "auto" and isinstance(accum, int) and accum > 0 and declared is None:
        return Decision.allow("training.effective_batch_size", f"batch_size auto (per device) x {accum}")
    return Decision.deny(
        "training.effective_batch_size",
        f"batch_size={batch}, grad_accum_steps={accum}, effective_batch_size={declared} do not agree",
        "set batch_size (a positive integer or auto) and a positive integer grad_accum_steps; effective_batch_size, if given, must be their product",
    )


@rule("sandbox.available", source="DESIGN.md §5", description="Training runs in bubblewrap, or in an explicitly configured unconfined mode.")
def sandbox_available(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    mode, available = facts["sandbox_mode"], facts["sandbox_available"]
    if facts.get("executor_backend", "local") == "ray":
        # the child runs on a Ray worker: whether it is confined there is executor.isolation's call
        # (and its reason names the cluster, not a missing bwrap on this host)
        return Decision.allow("sandbox.available", "the Ray backend runs the child (executor.isolation applies)")
    if mode == "bwrap" and available is True:
        return Decision.allow("sandbox.available", "bubblewrap sandbox")
    if mode == "unconfined":
        return Decision.allow("sandbox.available", "unconfined mode explicitly configured (audited)")
    return Decision.deny("sandbox.available", "bubblewrap (bwrap) is not installed, so training cannot be confined", "ask the operator to install bubblewrap; the server will not train unconfined unless configured to")


BUSY_REMEDIATION = (
    "wait for a run to finish and call run_experiment again: list_runs shows the RUNNING ones, get_run a detached "
    "run's progress, and cancel_run stops one you started"
)


def busy_reason(running: int, limit: int) -> str:
    return f"{running} run{' is' if running == 1 else 's are'} in progress; the limit is {limit}"


@rule("training.concurrency", source="issue 4 long runs", description="At most the configured number of runs at once.")
def concurrency(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    limit = config["policy"]["training"]["max_concurrent_runs"]
    running = facts["running_runs"]
    if isinstance(running, int) and running < limit:
        return Decision.allow("training.concurrency", f"{running} of {limit} run slots in use")
    if config["policy"]["training"]["when_busy"] == "wait":
        return Decision.allow("training.concurrency", f"all {limit} run slots busy; the run waits for one")
    return Decision.deny("training.concurrency", busy_reason(running, limit), BUSY_REMEDIATION)


def fraction_tolerance(config: Mapping[str, Any]) -> float:
    """The standards' split.fraction_tolerance, else configs/policy.yaml split.fraction_tolerance."""
    declared = (config["standards"].get("split") or {}).get("fraction_tolerance")
    return float(declared if declared is not None else config["policy"]["split"]["fraction_tolerance"])


@rule(
    "split.realised_fractions",
    source="issue 9 item 5",
    description="The split the server computed holds the protected window fractions (split.test_size, ...) within the configured tolerance.",
)
def realised_fractions(facts: Mapping[str, Any], config: Mapping[str, Any]) -> Decision:
    split = facts.get("split")
    if not isinstance(split, Mapping):
        return Decision.allow("split.realised_fractions", "not checked: no split was made (see the other rules)")
    tolerance = fraction_tolerance(config)
    realised, expected = split["fractions"], split["expected"]
    off = {w: (realised[w], want) for w, want in sorted(expected.items()) if abs(realised[w] - want) > tolerance}
    if not off:
        return Decision.allow("split.realised_fractions", f"realised {realised} within {tolerance:g} of {expected}")
    listed = "; ".join(f"{w} {got:.3f} instead of {want:g}" for w, (got, want) in off.items())
    return Decision.deny(
        "split.realised_fractions",
        f"the split made {listed} (tolerance {tolerance:g}): equal times stay in one window, so coarse times (months) move the cut",
        "use a finer time column or date bounds (split.train_end/validation_end, a protected change needing approval), "
        "or ask the operator to widen split.fraction_tolerance in the standards",
    )
