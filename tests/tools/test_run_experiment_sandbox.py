"""run_experiment with hostile features and with the torch family: real bwrap, real MLflow."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tools.test_run_experiment import REASONING, _experiments, call, governed  # noqa: F401 - fixture

pytestmark = pytest.mark.anyio
HOSTILE = {
    "network": "import socket\n\ndef build_features(frame):\n    socket.create_connection(('127.0.0.1', 9), timeout=2)\n    return frame\n",
    "state_dir": "def build_features(frame):\n    open({state!r}).read()\n    return frame\n",
    "git_dir": "def build_features(frame):\n    open({git!r}).read()\n    return frame\n",
}


@pytest.mark.parametrize("attempt", sorted(HOSTILE))
async def test_hostile_features_fail_the_run_and_the_server_keeps_serving(governed: dict[str, Any], attempt: str) -> None:
    workspace, features = governed["workspace"], governed["workspace"] / "src/features.py"
    honest = features.read_text()
    features.write_text(HOSTILE[attempt].format(state=str(governed["settings"].audit_path), git=str(workspace / ".git/config")))
    failed = await call(governed, {"reasoning": REASONING})
    assert failed.is_error and failed.structured_content["rule_id"] == "sandbox.child_error"
    features.write_text(honest)
    succeeded = await call(governed, {"reasoning": REASONING})
    assert not succeeded.is_error, succeeded.structured_content
    statuses = sorted(r["status"] for r in governed["ports"].tracking.search_runs(_experiments(governed)))
    assert statuses == ["FAILED", "FINISHED"]


async def test_a_torch_run_logs_its_effective_batch_size(governed: dict[str, Any]) -> None:
    model = {"type": "torch_mlp", "params": {"epochs": 3, "batch_size": 32, "grad_accum_steps": 2, "hidden_sizes": [16]}}
    result = await call(governed, {"reasoning": REASONING, "config": {"model": model}})
    assert not result.is_error, result.structured_content
    run = governed["ports"].tracking.get_run(result.structured_content["run_id"])
    assert run["params"]["hardware.effective_batch_size"] == "64" and run["params"]["hardware.batch_size"] == "32"
    assert run["params"]["hardware.device"] in ("cpu", "cuda") and run["params"]["config.model.type"] == "torch_mlp"

