"""PR provenance rules (policies/provenance.py): an allow and a deny case each, plus the pure helpers."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import pytest

from policies import Principal
from policies.decision import decide_one
from policies.provenance import branch_problem, guard_hits, protected_deviations
from policies.registry import load_all
from tests.policies.cases import BASE_POLICY, BASE_STANDARDS, RuleCase, config

C = "a" * 40
GUARD = {"patterns": [r"\.fit\s*\(", r"\.train\s*\(", r"\.partial_fit\s*\(", r"\bmlflow\.start_run\b", r"\bmlflow\.log_"], "exclude": ["*.md", "docs/*"]}
CFG = config(policy={**BASE_POLICY, "training_guard": GUARD})
EXPERIMENT = {
    "data": {"target": "default", "positive_class": 1},
    "split": {"strategy": "stratified_kfold", "n_splits": 5, "test_size": 0.2},
    "features": {"exclude": [], "use_protected_attributes": False},
    "evaluation": {"primary_metric": "roc_auc"},
}
AGENT, HUMAN = Principal("agent-1", "agent"), Principal("alice", "human")


def facts(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "principal": AGENT,
        "run": {"run_id": "r" * 32, "status": "FINISHED", "params": {"git_commit": C, "git_dirty": "false"}, "metrics": {}, "tags": {}},
        "commit": C,
        "branch": "agent/better-features",
        "branch_problem": None,
        "branch_head": None,
        "protected_ref": "main",
        "commit_known": True,
        "commit_on_base": False,
        "changed_paths": ["src/features.py"],
        "added_lines": {"src/features.py": [(14, "    frame['ratio'] = frame.a / frame.b")]},
        "experiment": deepcopy(EXPERIMENT),
        "in_force": {},
        "secret_findings": [],
        "run_files": {"recorded": True, "mismatched": []},
    }
    base.update(changes)
    return base


def with_params(**params: Any) -> dict[str, Any]:
    run = facts()["run"]
    return facts(run={**run, "params": {**run["params"], **params}})


def experiment(**paths: Any) -> dict[str, Any]:
    doc = deepcopy(EXPERIMENT)
    for path, value in paths.items():
        section, key = path.split("__")
        doc[section][key] = value
    return facts(experiment=doc)


CASES = [
    RuleCase("pr.run_succeeded", "allow", facts(), CFG, "finished"),
    RuleCase("pr.run_succeeded", "deny", facts(run={**facts()["run"], "status": "FAILED"}), CFG, "failed"),
    RuleCase("pr.run_succeeded", "deny", facts(run={**facts()["run"], "status": "RUNNING"}), CFG, "running"),
    RuleCase("pr.run_clean", "allow", facts(), CFG, "clean"),
    RuleCase("pr.run_clean", "deny", with_params(git_dirty="true"), CFG, "dirty"),
    RuleCase("pr.run_clean", "deny", with_params(git_dirty=None), CFG, "no_flag"),
    RuleCase("pr.run_clean", "deny", with_params(git_commit="HEAD"), CFG, "commit_not_an_id"),
    RuleCase("pr.run_clean", "deny", facts(run_files={"recorded": True, "mismatched": ["src/features.py"]}), CFG, "hidden_change_in_the_bytes_used"),
    RuleCase("pr.run_clean", "deny", facts(run_files={"recorded": False, "mismatched": []}), CFG, "no_recorded_file_hashes"),
    RuleCase("pr.run_clean", "deny", facts(run_files=None), CFG, "no_run_files_facts"),
    RuleCase("pr.branch_allowed", "allow", facts(), CFG, "agent_branch"),
    RuleCase("pr.branch_allowed", "deny", facts(branch="main", branch_problem=branch_problem("main")), CFG, "main"),
    RuleCase("pr.branch_allowed", "deny", facts(branch="--upload-pack=x", branch_problem=branch_problem("--upload-pack=x")), CFG, "option"),
    RuleCase("pr.branch_allowed", "deny", facts(branch="agent/a..b", branch_problem=None), CFG, "problem_recomputed"),
    RuleCase("pr.commit_is_branch_head", "allow", facts(), CFG, "created"),
    RuleCase("pr.commit_is_branch_head", "allow", facts(branch_head=C), CFG, "head"),
    RuleCase("pr.commit_is_branch_head", "deny", facts(branch_head="b" * 40), CFG, "other_commit"),
    RuleCase("pr.commit_is_branch_head", "deny", facts(commit_known=False), CFG, "unknown_commit"),
    RuleCase("pr.has_changes", "allow", facts(), CFG, "ahead"),
    RuleCase("pr.has_changes", "deny", facts(commit_on_base=True), CFG, "already_on_main"),
    RuleCase("pr.training_guard", "allow", facts(), CFG, "clean"),
    RuleCase("pr.training_guard", "allow", facts(added_lines={"docs/howto.md": [(3, "model.fit(X, y)")]}), CFG, "excluded"),
    RuleCase("pr.training_guard", "deny", facts(added_lines={"src/features.py": [(9, "scaler.fit(frame)")]}), CFG, "fit"),
    RuleCase("pr.training_guard", "deny", facts(added_lines={"src/x.py": [(1, "with mlflow.start_run():")]}), CFG, "start_run"),
    RuleCase("pr.training_guard", "deny", facts(added_lines={"nb.ipynb": [(40, '"booster.train (params)"')]}), CFG, "train_with_space"),
    RuleCase("pr.protected_fields_unchanged", "allow", facts(), CFG, "standards"),
    RuleCase("pr.protected_fields_unchanged", "allow", {**experiment(split__test_size=0.3), "in_force": {"split.test_size": "0.3"}}, CFG, "approved"),
    RuleCase("pr.protected_fields_unchanged", "deny", experiment(split__test_size=0.3), CFG, "moved"),
    RuleCase("pr.protected_fields_unchanged", "deny", experiment(data__positive_class="1"), CFG, "type_changed"),
    RuleCase("pr.protected_fields_unchanged", "deny", facts(experiment=None), CFG, "unreadable"),
    RuleCase("pr.standards_unchanged", "allow", facts(), CFG, "untouched"),
    RuleCase("pr.standards_unchanged", "allow", facts(principal=HUMAN, changed_paths=["configs/project_standards.yaml"]), CFG, "human"),
    RuleCase("pr.standards_unchanged", "deny", facts(changed_paths=["configs/project_standards.yaml"]), CFG, "agent"),
    RuleCase("pr.no_secrets", "allow", facts(), CFG, "clean"),
    RuleCase("pr.no_secrets", "deny", facts(secret_findings=["body"]), CFG, "body"),
    RuleCase("role.agents_cannot_touch_main", "allow", facts(), CFG, "agent_branch"),
    RuleCase("role.agents_cannot_touch_main", "deny", facts(branch="main"), CFG, "main"),
    RuleCase("role.agents_cannot_touch_main", "deny", facts(branch="feature/x", principal=HUMAN), CFG, "not_agent_branch"),
    RuleCase("role.agents_cannot_touch_main", "deny", facts(branch="--upload-pack=evil"), CFG, "option"),
]


@pytest.mark.parametrize("branch", ["--upload-pack=evil", "feature/x", "a..b", None])
def test_a_refused_branch_that_is_not_the_protected_one_is_refused_by_name_not_as_main(branch: Any) -> None:
    decision = decide_one(load_all()["role.agents_cannot_touch_main"], facts(branch=branch), CFG)
    assert not decision.allowed and decision.reason.startswith("the branch name is refused: branch names must be agent/"), decision.reason
    assert "main is protected" not in decision.reason


def test_the_protected_branch_is_refused_as_protected() -> None:
    decision = decide_one(load_all()["role.agents_cannot_touch_main"], facts(branch="main"), CFG)
    assert not decision.allowed and decision.reason.startswith("main is protected"), decision.reason


@pytest.mark.parametrize(
    "name",
    ["--upload-pack=x", "-c x=y", "main", "a..b", "agent/a..b", "@{-1}", "agent/@{-1}", "x\ny", "agent/x\ny", "agent/x\n", "a" * 300, "agent/" + "a" * 61,
     "agent/", "agent/.hidden", "agent/-x", "agent/x.lock", "agent/x.", "agent/X", "agent/a/b", "agent/a b", "refs/heads/agent/x", "", None, 7],
)  # fmt: skip
def test_refused_branch_names_have_a_reason(name: Any) -> None:
    assert branch_problem(name)


@pytest.mark.parametrize("name", ["agent/x", "agent/run-0123456789ab", "agent/a.b_c-d", "agent/" + "a" * 60])
def test_allowed_branch_names(name: str) -> None:
    assert branch_problem(name) is None


def test_guard_hits_report_path_line_and_pattern_and_skip_exclusions() -> None:
    added = {"src/features.py": [(7, "x = 1"), (8, "clf.partial_fit(X)")], "README.md": [(1, "call model.fit(")]}
    assert guard_hits(added, GUARD) == [{"path": "src/features.py", "line": 8, "pattern": r"\.partial_fit\s*\("}]


def test_protected_deviations_accept_standard_or_approved_values_only() -> None:
    protected = BASE_STANDARDS["protected_fields"]
    doc = deepcopy(EXPERIMENT)
    doc["split"]["test_size"] = 0.25
    del doc["features"]["use_protected_attributes"]
    found = protected_deviations(doc, protected, {"split.test_size": "0.25"})
    assert [d["path"] for d in found] == ["features.use_protected_attributes"]
    assert found[0]["value"] == "<absent>"
