"""Device choice of the training child: CPU without CUDA, a clear error when cuda is asked of a host
without one, the batch size auto picks per device recorded with the run, xgboost's device param."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from server.sandbox_facts import vouched
from server.sandbox_vocabulary import child_error_text
from tests.training.rundirs import write_run_dir
from tests.training.test_runner import predictions, run_child
from training import boosting, torch_mlp
from training.errors import DeviceError
from training.runner import load_spec
from training.spec import CPU_BATCH_SIZE, XGBoostParams

SMALL_TORCH = {"epochs": 2, "hidden_sizes": [8]}
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="asserts what a host without CUDA does")


@pytest.mark.parametrize(("requested", "visible", "chosen"), [
    ("auto", False, "cpu"), ("cpu", False, "cpu"), ("cpu", True, "cpu"), ("auto", True, "cuda"), ("cuda", True, "cuda"),
])
def test_each_family_runs_where_asked_and_on_cpu_without_cuda(requested, visible, chosen):
    assert torch_mlp.select_device(requested, cuda_available=visible).type == chosen
    assert boosting.select_device(requested, cuda_available=visible) == chosen


def test_cuda_asked_without_a_cuda_device_is_a_device_error():
    for select in (torch_mlp.select_device, boosting.select_device):
        with pytest.raises(DeviceError) as caught:
            select("cuda", cuda_available=False)
        assert caught.value.code == "device_unavailable"


def test_xgboost_sees_no_cuda_without_nvidia_device_nodes_or_when_they_are_hidden(tmp_path):
    assert not boosting.cuda_visible({}, dev=tmp_path)
    (tmp_path / "nvidiactl").touch()
    (tmp_path / "nvidia0").touch()
    assert not boosting.cuda_visible({"CUDA_VISIBLE_DEVICES": ""}, dev=tmp_path)
    assert not boosting.cuda_visible({"CUDA_VISIBLE_DEVICES": "-1"}, dev=tmp_path)
    assert boosting.cuda_visible({}, dev=tmp_path) == bool(boosting.xgb.build_info().get("USE_CUDA"))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_xgboost_runs_hist_on_the_chosen_device_with_the_run_s_seed(device):
    params = boosting.booster_params(XGBoostParams(max_depth=3), seed=11, device=device)
    assert params["device"] == device and params["tree_method"] == "hist" and params["seed"] == 11
    assert params["max_depth"] == 3 and "gpu_id" not in params and "n_estimators" not in params


@needs_no_cuda
@pytest.mark.parametrize(("model_type", "params"), [("torch_mlp", SMALL_TORCH), ("xgboost", {"n_estimators": 5})])
def test_a_run_asking_for_cuda_on_a_host_without_one_fails_with_a_worded_device_error(tmp_path, model_type, params):
    run_dir = write_run_dir(tmp_path, model_type, params=params, device="cuda")
    status, result = run_child(run_dir)
    assert status == 1 and result.status == "error" and result.phase == "fit" and result.code == "device_unavailable"
    assert "the requested device is not usable" in child_error_text(result, features_lines=2)
    assert not (run_dir / "outputs" / "predictions.parquet").exists()


def test_an_auto_batch_run_records_the_size_it_used_and_the_server_keeps_it(tmp_path):
    run_dir = write_run_dir(tmp_path, "torch_mlp", params=SMALL_TORCH, device="cpu")
    status, result = run_child(run_dir)
    assert status == 0 and result.device == "cpu"
    assert result.batch_size == CPU_BATCH_SIZE and result.effective_batch_size == CPU_BATCH_SIZE
    kept = vouched(result, load_spec(run_dir / "inputs" / "spec.json"))
    assert kept.batch_size == CPU_BATCH_SIZE and kept.effective_batch_size == CPU_BATCH_SIZE
    # a child claiming a size the spec does not give is not believed
    claimed = vouched(result.model_copy(update={"batch_size": 7}), load_spec(run_dir / "inputs" / "spec.json"))
    assert claimed.batch_size is None


@pytest.mark.parametrize("params", [
    {"epochs": 3, "hidden_sizes": [16, 8]},
    {"epochs": 3, "batch_size": 16, "dropout": 0.2, "weight_decay": 0.01},
    {"epochs": 2, "batch_size": 8, "grad_accum_steps": 3},
])
def test_the_same_seed_gives_bit_identical_torch_predictions(tmp_path, params):
    first, second = (write_run_dir(tmp_path / name, "torch_mlp", rows=400, seed=9, params=params) for name in "ab")
    assert run_child(first)[0] == run_child(second)[0] == 0
    pd.testing.assert_frame_equal(predictions(first), predictions(second), check_exact=True)
    other = write_run_dir(tmp_path / "c", "torch_mlp", rows=400, seed=10, params=params)
    run_child(other)
    assert not predictions(first)["score"].equals(predictions(other)["score"])
