"""server/sandbox_facts.py: a child's success facts reach MLflow only as far as the server vouches."""

from __future__ import annotations

from server.sandbox_facts import host_library_versions, vouched
from training.contract import SuccessResult
from training.spec import parse_spec

TORCH = parse_spec('{"model": {"type": "torch_mlp", "params": {"batch_size": 16, "grad_accum_steps": 2}}, "seed": 1, "feature_columns": ["a"]}')


def result(**facts) -> SuccessResult:
    base = {"train_seconds": 1.0, "predict_seconds": 0.1, "inference_latency_ms_per_row": 0.01, "device": "cpu",
            "library_versions": {}, "n_features": 1, "feature_names": ["a"], "n_train_rows": 10, "n_eval_rows": 5}
    return SuccessResult(**(base | facts))


def test_free_text_and_full_precision_facts_are_replaced_or_rounded():
    hostile = result(library_versions={"numpy": "row17_alice_52000_1"}, gpu_name="alice 52000 1",
                     train_seconds=1.234567891234, peak_gpu_memory_bytes=123456789123, effective_batch_size=999)
    kept = vouched(hostile, TORCH)
    assert kept.library_versions == host_library_versions() and "alice" not in str(kept.library_versions)
    assert kept.gpu_name is None and kept.effective_batch_size is None
    assert kept.train_seconds == 1.235 and kept.peak_gpu_memory_bytes == 123500000000


def test_the_spec_s_effective_batch_size_is_kept():
    assert vouched(result(effective_batch_size=32), TORCH).effective_batch_size == 32
    assert vouched(result(effective_batch_size=32), None).effective_batch_size is None
