"""The detached section of a run's view, from the run's tags and its stored result."""

from __future__ import annotations

from tools.detached_view import CALL_TAG, PROGRESS_TAGS, detached_view

RUN = {"run_id": "a" * 32, "status": "FINISHED", "tags": {CALL_TAG: "c" * 32, PROGRESS_TAGS[0]: "3", PROGRESS_TAGS[1]: "3", PROGRESS_TAGS[2]: "done"}}
RESULT = {"run_id": "a" * 32, "status": "FINISHED", "split": {"test": 0.25}, "metrics": {"roc_auc": {"value": 0.7}}, "gates": ["g"]}
VIEW = {"run_id": "a" * 32, "status": "FINISHED", "split": {"test": 0.25}, "metrics": {"roc_auc": {"value": 0.7}, "f1": {"value": 0.2}}}


def test_a_finished_detached_run_leaves_out_what_its_view_shows_alike_and_names_it() -> None:
    section = detached_view(RUN, RESULT, VIEW)["detached"]
    assert section["same_as_view"] == ["split"]
    assert section["result"] == {"run_id": "a" * 32, "status": "FINISHED", "metrics": {"roc_auc": {"value": 0.7}}, "gates": ["g"]}
    assert {field: VIEW[field] for field in section["same_as_view"]} | section["result"] == RESULT
    assert section["progress"] == {"done": 3.0, "total": 3.0, "fraction": 1.0, "message": "done"}


def test_without_a_view_the_whole_result_is_shown() -> None:
    section = detached_view(RUN, RESULT)["detached"]
    assert section["result"] == RESULT and section["same_as_view"] == []


def test_a_running_detached_run_has_no_result_yet_and_a_plain_run_no_section() -> None:
    running = detached_view({**RUN, "status": "RUNNING"}, RESULT, VIEW)["detached"]
    assert running["result"] is None and "same_as_view" not in running
    assert detached_view({**RUN, "tags": {}}, RESULT, VIEW) == {}
