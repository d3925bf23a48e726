from copy import deepcopy
from typing import Any

from policies.training import concurrency, temporal_split_when_time
from tests.policies.cases import BASE_POLICY, RuleCase, config

RUN_CONFIG: dict[str, Any] = {
    "experiment": {"name": "x", "seed": 42},
    "split": {"strategy": "temporal_split"},
    "model": {"type": "xgboost", "params": {}},
    "features": {"exclude": [], "use_protected_attributes": False},
}
POLICY = {**BASE_POLICY, "training": {"max_concurrent_runs": 1, "when_busy": "refuse", "parallel_stages": 3}}


def facts(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "config": deepcopy(RUN_CONFIG),
        "dataset_columns": ["income", "application_date", "default"],
        "feature_columns": ["income"],
        "sandbox_mode": "bwrap",
        "sandbox_available": True,
        "running_runs": 0,
        "protected_override_approved": False,
    }
    for path, value in changes.items():
        node = base
        *parents, leaf = path.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return base


def torch(**params: Any) -> dict[str, Any]:
    return facts(config__model={"type": "torch_mlp", "params": params})


CFG = config(policy=POLICY)
CASES = [
    RuleCase("training.seed_set", "allow", facts(), CFG, "int"),
    RuleCase("training.seed_set", "deny", facts(config__experiment={"name": "x", "seed": None}), CFG, "missing"),
    RuleCase("training.seed_set", "deny", facts(config__experiment={"name": "x", "seed": True}), CFG, "bool"),
    RuleCase("training.temporal_split_when_time", "allow", facts(), CFG, "temporal"),
    RuleCase("training.temporal_split_when_time", "allow", facts(dataset_columns=["income"], config__split={"strategy": "stratified_kfold"}), CFG, "no_time"),
    RuleCase("training.temporal_split_when_time", "deny", facts(config__split={"strategy": "stratified_kfold"}), CFG, "kfold_on_time_data"),
    RuleCase(
        "training.temporal_split_when_time",
        "deny",
        facts(dataset_columns=["income", "Application_Date", "default"], config__split={"strategy": "stratified_kfold"}),
        CFG,
        "kfold_on_a_look_alike_time_column",
    ),
    RuleCase("training.temporal_split_when_time", "allow", facts(dataset_columns=["income", "application_date_x", "default"], config__split={"strategy": "stratified_kfold"}), CFG, "no_time_by_key"),
    RuleCase("training.no_pii_features", "allow", facts(), CFG, "clean"),
    RuleCase("training.no_pii_features", "deny", facts(feature_columns=["income", "email"]), CFG, "email"),
    RuleCase("training.protected_attributes_excluded", "allow", facts(), CFG, "excluded"),
    RuleCase("training.protected_attributes_excluded", "deny", facts(feature_columns=["gender"]), CFG, "unapproved"),
    RuleCase(
        "training.protected_attributes_excluded",
        "allow",
        facts(feature_columns=["gender"], config__features={"exclude": [], "use_protected_attributes": True}, protected_override_approved=True),
        CFG,
        "approved",
    ),
    RuleCase("training.effective_batch_size", "allow", facts(), CFG, "not_torch"),
    RuleCase("training.effective_batch_size", "allow", torch(batch_size=32, grad_accum_steps=4, effective_batch_size=128), CFG, "product"),
    RuleCase("training.effective_batch_size", "deny", torch(batch_size=32, grad_accum_steps=4, effective_batch_size=64), CFG, "mismatch"),
    RuleCase("training.effective_batch_size", "deny", torch(batch_size=32), CFG, "missing_accum"),
    RuleCase("training.effective_batch_size", "allow", torch(batch_size="auto", grad_accum_steps=2), CFG, "auto"),
    RuleCase("training.effective_batch_size", "deny", torch(batch_size="auto", grad_accum_steps=2, effective_batch_size=512), CFG, "auto_declared"),
    RuleCase("sandbox.available", "allow", facts(), CFG, "bwrap"),
    RuleCase("sandbox.available", "allow", facts(sandbox_mode="unconfined", sandbox_available=False), CFG, "unconfined"),
    RuleCase("sandbox.available", "deny", facts(sandbox_available=False), CFG, "missing_bwrap"),
    RuleCase("sandbox.available", "deny", facts(sandbox_available=False, executor_backend="local"), CFG, "missing_bwrap_on_the_local_backend"),
    RuleCase("sandbox.available", "allow", facts(sandbox_available=False, executor_backend="ray"), CFG, "ray_backend_left_to_executor_isolation"),
    RuleCase("training.concurrency", "allow", facts(), CFG, "free"),
    RuleCase("training.concurrency", "deny", facts(running_runs=1), CFG, "busy"),
    RuleCase("training.concurrency", "allow", facts(running_runs=1), config(policy={**POLICY, "training": {"max_concurrent_runs": 1, "when_busy": "wait"}}), "busy_waits"),
]


def test_a_random_split_on_a_look_alike_time_column_is_denied_with_the_rename() -> None:
    changed = facts(dataset_columns=["income", "ａｐｐｌｉｃａｔｉｏｎ_ｄａｔｅ", "default"], config__split={"strategy": "stratified_kfold"})
    denied = temporal_split_when_time(changed, CFG)
    assert not denied.allowed and "'ａｐｐｌｉｃａｔｉｏｎ_ｄａｔｅ', the time column 'application_date' in another spelling" in denied.reason
    assert "renamed to 'application_date' (mlgate data add)" in denied.remediation and "mlgate standards set" in denied.remediation


def test_a_busy_denial_counts_runs_in_good_english_and_points_at_the_tools_that_free_a_slot() -> None:
    one = concurrency(facts(running_runs=1), CFG)
    two = concurrency(facts(running_runs=2), config(policy={**POLICY, "training": {"max_concurrent_runs": 2, "when_busy": "refuse"}}))
    assert one.reason == "1 run is in progress; the limit is 1" and two.reason == "2 runs are in progress; the limit is 2"
    assert all(tool in one.remediation for tool in ("list_runs", "get_run", "cancel_run"))
