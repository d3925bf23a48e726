"""The run views' project check goes through decide_one like every rule: a run record the rule
cannot read is a recorded deny of runs.same_project, never a raw exception."""

from __future__ import annotations

import pytest

from tools.errors import NotFound
from tools.run_views import require_project_run

STANDARDS = {"client_name": "acme", "project_name": "default"}


class OneExperiment:
    def find_experiment(self, name: str) -> str:
        return "7"


def test_a_run_of_this_project_passes():
    require_project_run(OneExperiment(), STANDARDS, {"run_id": "r1", "experiment_id": "7"})


def test_a_run_of_another_project_is_not_found_under_the_rule():
    with pytest.raises(NotFound) as caught:
        require_project_run(OneExperiment(), STANDARDS, {"run_id": "r1", "experiment_id": "8"})
    assert caught.value.rule_id == "runs.same_project" and "r1" in caught.value.reason


def test_a_run_record_the_rule_cannot_read_is_denied_under_the_rule_not_raised():
    with pytest.raises(NotFound) as caught:
        require_project_run(OneExperiment(), STANDARDS, ["not", "a", "mapping"])
    assert caught.value.rule_id == "runs.same_project" and "failed to evaluate" in caught.value.reason
