"""server/sandbox_result.py: how a finished child is classified (a pure table) and reported."""

from __future__ import annotations

import json

import pytest

from server.sandbox_result import SandboxResult, classify, exit_signal, read_result
from tools.errors import SandboxFailed
from training.contract import ErrorResult, SuccessResult

OK = SuccessResult(train_seconds=1, predict_seconds=0.1, inference_latency_ms_per_row=0.01, device="cpu",
                   library_versions={}, n_features=2, feature_names=["a", "b"], n_train_rows=10, n_eval_rows=5)


def error(error_type: str) -> ErrorResult:
    return ErrorResult(error_type=error_type, message="m")


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"exit_code": 0, "result": OK}, "ok"),
        ({"timed_out": True, "exit_code": 137, "sig": 9, "result": OK}, "timeout"),
        ({"exit_code": 0, "result": OK, "unsafe": ["leak"]}, "unsafe_output"),
        ({"exit_code": 1, "result": error("ValueError")}, "child_error"),
        ({"exit_code": 1, "result": error("MemoryError")}, "memory_limit"),
        ({"exit_code": 1, "result": error("FileSizeLimitError")}, "file_size_limit"),
        ({"exit_code": 1, "result": error("ProcessLimitError")}, "process_limit"),
        ({"exit_code": 152, "sig": 24}, "cpu_limit"),
        ({"exit_code": 153, "sig": 25}, "file_size_limit"),
        ({"exit_code": 137, "sig": 9, "result": OK}, "killed"),  # a result written before the kill does not count
        ({"exit_code": 139, "sig": 11}, "crashed"),
        ({"exit_code": 3, "result": OK}, "crashed"),
        ({"exit_code": 1, "stderr_tail": "bwrap: Can't mount proc"}, "sandbox_error"),
        ({"exit_code": 0}, "invalid_output"),
    ],
)
def test_classification_table(facts, reason):
    arguments = {"timed_out": False, "timeout_s": 5, "exit_code": None, "sig": None, "result": None, "unsafe": [],
                 "stderr_tail": ""} | facts
    assert classify(**arguments)[0] == reason


@pytest.mark.parametrize(("code", "mode", "sig"), [(137, "bwrap", 9), (1, "bwrap", None), (-24, "unconfined", 24),
                                                   (0, "unconfined", None), (None, "bwrap", None)])
def test_exit_signal_reads_bwrap_and_popen_conventions(code, mode, sig):
    assert exit_signal(code, mode) == sig


def test_raise_for_failure_names_the_reason_as_rule_id():
    result = SandboxResult(ok=False, reason="timeout", detail="ran past 3 s", mode="bwrap", duration_s=3.1)
    with pytest.raises(SandboxFailed) as caught:
        result.raise_for_failure()
    assert caught.value.rule_id == "sandbox.timeout" and caught.value.remediation
    SandboxResult(ok=True, reason="ok", detail="", mode="bwrap", duration_s=1).raise_for_failure()


def test_a_key_error_in_build_features_is_told_which_columns_it_gets_and_where_to_see_them():
    def remediation(phase: str, error_type: str) -> str:
        failed = ErrorResult(error_type=error_type, phase=phase, message="'applied_at'")
        result = SandboxResult(ok=False, reason="child_error", detail="failed", mode="bwrap", duration_s=1, result=failed)
        with pytest.raises(SandboxFailed) as caught:
            result.raise_for_failure()
        return caught.value.remediation

    told = remediation("build_features", "KeyError")
    assert "never the label, the time column, PII columns" in told and "dry_run" in told and "applied_at" not in told
    assert remediation("build_features", "ValueError") == remediation("fit", "KeyError") == "Fix the error in src/features.py or the hyperparameters, then run again."


def test_read_result_rejects_documents_outside_the_contract(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"status": "error", "error_type": "x y", "message": "m"}))
    assert read_result(tmp_path) is None
    (tmp_path / "result.json").write_text(OK.model_dump_json())
    assert read_result(tmp_path) == OK


def test_a_child_error_is_worded_by_the_server_from_checked_fields_only():
    hostile = ErrorResult(error_type="Row_17_alice_label_1", phase="build_features", code="features_row_count",
                          features_line=9_000, message="alice,52000,1\nbob,31000,0")
    reason, detail = classify(timed_out=False, timeout_s=5, exit_code=1, sig=None, result=hostile, unsafe=[],
                              stderr_tail="alice,52000,1", features_lines=40)
    assert reason == "child_error"
    assert detail == ("the training child failed while running build_features: an exception of another type "
                      "(build_features returned a different number of rows than it was given)")


def test_unsafe_outputs_are_counted_not_named():
    reason, detail = classify(timed_out=False, timeout_s=5, exit_code=0, sig=None, result=OK,
                              unsafe=["alice_52000_1", "bob_31000_0"], stderr_tail="")
    assert reason == "unsafe_output" and "alice" not in detail and "2 links" in detail

