"""The champion's model scored on a run's test rows, so promotion compares the two on the same rows.

A champion trained on an earlier data version was measured on another test window: its test figure
and a candidate's are two point estimates on different rows, and champion_tolerance could only
compare those. So when a champion exists and its recorded test predictions are not of this run's
test rows, run_experiment scores the champion's model on them in the sandbox (the child's score
task, training/scoring.py), from what the audit chain vouches for: the champion run's model files
and params (chained when it finished: an edited git_commit cannot point it at another features.py),
its config and src/features.py restored from its commit and checked against its config_hash and
feature_pipeline_hash, its feature columns. The test labels stay here.

The run then holds CHAMPION_PREDICTIONS ({__row_id__, score, label}: the champion's scores of the
run's test rows) and CHAMPION_COMPARISON (which champion run, or why it could not be scored); both
are chained with the run's artifacts, and promote pairs the run with that champion on those rows.
A champion that cannot be scored never fails the run: the comparison says why, and promote falls
back to the point estimates and says so.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pandas as pd

from policies.provenance import COMMIT
from tools.base import CallContext
from tools.errors import GovernanceError
from tools.experiment_schema import EXPERIMENT_PATH
from tools.champion_pairing import CHAMPION_COMPARISON, CHAMPION_PREDICTIONS
from tools.lifecycle import model_name
from tools.provenance import feature_columns_sha256, feature_pipeline_hash
from tools.reproduce import FEATURES_PATH, committed_config, files_at
from tools.run_features import context_columns, select_features
from tools.run_pins import rebuild_config
from tools.run_record import record_problem

STAGE = "champion"
log = logging.getLogger("mlgate.champion")


class NotScorable(Exception):
    """Why the champion's model cannot score this run's test rows (said in the comparison)."""


@dataclass(frozen=True)
class ChampionModel:
    """What the child's score task needs of the champion, restored and checked."""

    run_id: str
    version: str
    spec: dict[str, Any]
    features_py: bytes
    model_files: dict[str, bytes]


def _champion_run(ctx: CallContext) -> tuple[str, dict[str, Any]] | None:
    """(version, run) of the current champion; None when there is none."""
    model = model_name(ctx.config["standards"])
    version = ctx.ports.registry.alias_version(model, "champion")
    if version is None:
        return None
    return str(version), dict(ctx.ports.tracking.get_run(ctx.ports.registry.version(model, version)["run_id"]))


def _already_paired(ctx: CallContext, champion: dict[str, Any], dataset_hash: str, test_rows: np.ndarray) -> bool:
    """Whether the champion's own test predictions are of exactly these rows of this dataset."""
    if champion["params"].get("dataset_content_hash") != dataset_hash:
        return False
    theirs = ctx.ports.run_artifacts.read_predictions(champion["run_id"])
    return theirs is not None and np.array_equal(np.sort(theirs["__row_id__"].to_numpy()), np.sort(test_rows))


def _sources(ctx: CallContext, params: dict[str, str]) -> tuple[dict[str, Any], bytes]:
    """The champion's config and src/features.py from its commit, each checked against its hash."""
    commit = params.get("git_commit", "")
    if not COMMIT.match(commit) or not ctx.ports.git.has_commit(commit):
        raise NotScorable(f"its commit {commit[:12]!r} is not in the workspace repository")
    files = files_at(ctx, commit)
    config = rebuild_config(params, committed_config(ctx, files[EXPERIMENT_PATH]))
    if config is None:
        raise NotScorable("neither its logged config nor the one at its commit hashes to its config_hash")
    features_py = files[FEATURES_PATH]
    if features_py is None or feature_pipeline_hash(features_py, config["features"]) != params.get("feature_pipeline_hash"):
        raise NotScorable(f"{FEATURES_PATH} at its commit does not hash to its feature_pipeline_hash")
    return config, features_py


def _columns(ctx: CallContext, params: dict[str, str], config: dict[str, Any], frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The champion's feature columns (and the categorical ones), which this run's rows must hold."""
    selected, categorical = select_features(frame, config, ctx.config["standards"])
    if "feature_columns" in params:
        recorded = json.loads(params["feature_columns"])
        missing = [c for c in recorded if c not in frame.columns]
        if missing:
            raise NotScorable(f"this run's dataset lacks its feature columns {', '.join(map(str, missing[:10]))}")
        return recorded, [c for c in categorical if c in recorded]
    if feature_columns_sha256(selected) != params.get("feature_columns_sha256"):
        raise NotScorable("this run's dataset gives other feature columns under its config than it was trained on")
    return selected, categorical


def restore(ctx: CallContext, version: str, champion: dict[str, Any], frame: pd.DataFrame) -> ChampionModel:
    """The champion's model, as the audit chain vouches for it; raises NotScorable."""
    problem = record_problem(ctx, champion, legacy_ok=True)
    if problem is not None:
        raise NotScorable(f"its run is not as the audit chain recorded it ({problem})")
    params = champion["params"]
    config, features_py = _sources(ctx, params)
    features, categorical = _columns(ctx, params, config, frame)
    model_files = ctx.ports.run_artifacts.read_model_files(champion["run_id"])
    if not model_files:
        raise NotScorable("its run holds no readable model files")
    spec = {"model": config["model"], "seed": int(config["experiment"]["seed"]), "feature_columns": features,
            "context_columns": context_columns(frame.columns, features, ctx.config["standards"]),
            "categorical_columns": categorical, "device": "cpu", "task": "score"}  # fmt: skip
    return ChampionModel(champion["run_id"], version, spec, features_py, model_files)


async def _score(ctx: CallContext, run_id: str, champion: ChampionModel, frame: pd.DataFrame, test_rows: np.ndarray) -> np.ndarray:
    """The champion's scores of the test rows (in their order), from a sandboxed child."""
    from tools.experiment_runner import aligned_scores, with_columns  # noqa: PLC0415 - experiment_runner imports this module

    ports = ctx.ports
    directory = ports.rundirs.stage_dir(run_id, STAGE)
    columns = [*champion.spec["feature_columns"], *champion.spec["context_columns"]]
    rows = with_columns(frame.iloc[test_rows][columns], {"__row_id__": test_rows.astype("int64")})
    await anyio.to_thread.run_sync(ports.rundirs.write_score_inputs, directory, rows, champion.spec, champion.features_py, champion.model_files)
    result = await ports.sandbox.run(directory)
    result.raise_for_failure()
    predictions = await anyio.to_thread.run_sync(ports.rundirs.read_predictions, directory)
    return aligned_scores(predictions, test_rows)


async def _champion_to_score(ctx: CallContext, dataset_hash: str, test_rows: np.ndarray) -> tuple[str, dict[str, Any]] | None:
    """(version, run) of a champion whose own test predictions are not of these rows, else None."""
    found = await anyio.to_thread.run_sync(_champion_run, ctx)
    if found is None or await anyio.to_thread.run_sync(_already_paired, ctx, found[1], dataset_hash, test_rows):
        return None
    return found


async def score_champion(ctx: CallContext, run_id: str, dataset_hash: str, frame: pd.DataFrame, test_rows: np.ndarray) -> dict[str, Any] | None:
    """{"comparison": CHAMPION_COMPARISON's document, "scores": the champion's scores or None}, or
    None when there is no champion or its own predictions already are of these rows. Never raises
    but for cancellation: a champion that cannot be scored is a comparison saying why."""
    try:
        found = await _champion_to_score(ctx, dataset_hash, test_rows)
    except Exception as exc:  # noqa: BLE001 - the run stands without a comparison
        log.warning("looking up the champion to score failed: %s", type(exc).__name__)
        return None
    if found is None:
        return None
    version, champion = found
    comparison = {"champion_run_id": champion["run_id"], "champion_version": version,
                  "champion_dataset_hash": champion["params"].get("dataset_content_hash"), "test_rows": len(test_rows)}  # fmt: skip
    try:
        model = await anyio.to_thread.run_sync(restore, ctx, version, champion, frame)
        scores = await _score(ctx, run_id, model, frame, test_rows)
    except Exception as exc:  # noqa: BLE001 - the run stands; the comparison says why it is unpaired
        return {"comparison": {**comparison, "scored": False, "reason": _reason(exc)}, "scores": None}
    return {"comparison": {**comparison, "scored": True, "reason": None}, "scores": scores}


def _reason(exc: Exception) -> str:
    if isinstance(exc, NotScorable):
        return str(exc)
    if isinstance(exc, GovernanceError):
        return f"{exc.rule_id}: {exc.reason}"
    log.warning("scoring the champion failed: %s", type(exc).__name__)
    return f"internal error ({type(exc).__name__})"


def log_champion_scores(ctx: CallContext, run_id: str, found: dict[str, Any] | None, labels: np.ndarray, test_rows: np.ndarray) -> list[str]:
    """Logs CHAMPION_COMPARISON (and, when scored, CHAMPION_PREDICTIONS) on the run; their paths."""
    if found is None:
        return []
    tracking = ctx.ports.tracking
    refs = [tracking.log_json_artifact(run_id, CHAMPION_COMPARISON, found["comparison"])]
    if found["scores"] is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / CHAMPION_PREDICTIONS
            pd.DataFrame({"__row_id__": test_rows.astype("int64"), "score": found["scores"], "label": labels[test_rows]}).to_parquet(path, index=False)
            refs.append(tracking.log_artifact_file(run_id, path))
    return refs
