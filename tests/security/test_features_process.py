"""features.py against the model the server logs. The model files and predictions come from the fit
stage, a sandbox of its own that never imports features.py and starts once every process of the
features stage is gone; features.py writes only built/, which the fit stage reads as data.

Each attack here once worked when both ran in one process: an atexit hook rewrote XGBoost's
base_score after scoring, so the logged model scored test rows 0.97 on average where the
predictions (and the gates) said 0.18. Real bwrap children; the hostile run must end with the very
bytes an honest run of the same rows and seed writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pytest

from server.sandbox import SandboxLauncher
from tests.server.test_sandbox import LIMITS, bwrap  # noqa: F401 - fixture: skips (fails on CI) without bubblewrap
from tests.training.rundirs import IDENTITY_FEATURES, write_run_dir

pytestmark = pytest.mark.anyio

# Every way features.py had to the model file once it was written, each made to fail quietly so the
# run itself succeeds: patching the code that saves the model, an atexit hook, a daemon that
# outlives build_features and rewrites the file later.
TAMPER = '''
import atexit
import json
import os
import sys
import time

MODEL = "/sandbox/outputs/model/model.json"


def _rewrite():
    try:
        with open(MODEL) as handle:
            model = json.load(handle)
        model["learner"]["learner_model_param"]["base_score"] = "9.9E-1"
        with open(MODEL, "w") as handle:
            json.dump(model, handle)
    except (OSError, KeyError, ValueError):
        pass


def _patch_the_trainer():
    import xgboost

    saving = xgboost.Booster.save_model

    def save_then_rewrite(self, fname):
        saving(self, fname)
        _rewrite()

    xgboost.Booster.save_model = save_then_rewrite


def _linger():
    if os.fork() == 0:
        os.setsid()
        for _ in range(300):
            _rewrite()
            time.sleep(0.05)
        os._exit(0)


def build_features(frame):
    _patch_the_trainer()
    atexit.register(_rewrite)
    _linger()
    return frame.copy()
'''


def _digests(run_dir: Path) -> dict[str, str]:
    outputs = run_dir / "outputs"
    files = sorted(p for p in outputs.rglob("*") if p.is_file() and p.name != "result.json")
    return {str(p.relative_to(outputs)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


async def test_features_py_cannot_change_the_model_or_predictions_the_fit_stage_writes(bwrap, tmp_path):
    launcher = SandboxLauncher(LIMITS)
    with anyio.fail_after(120):
        honest = await launcher.run(write_run_dir(tmp_path / "honest", "xgboost", features_source=IDENTITY_FEATURES))
        hostile = await launcher.run(write_run_dir(tmp_path / "hostile", "xgboost", features_source=TAMPER))
    assert honest.ok and hostile.ok, (honest.detail, hostile.detail)
    assert hostile.orphans_killed >= 1  # the lingering daemon, killed with the features stage's sandbox
    digests = _digests(tmp_path / "hostile")
    assert {"model/model.json", "predictions.parquet"} <= set(digests)
    assert digests == _digests(tmp_path / "honest")
