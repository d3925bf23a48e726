"""What a past run pinned (DESIGN §6 Tier 1), rebuilt from its MLflow params and checked.

A run logs its whole experiment config flattened under `config.*` params (strings as they are,
everything else as canonical JSON) and its hash as `config_hash`. Rebuilding the config from the
params is exact when the rebuilt document hashes to `config_hash`; otherwise the config committed
at the run's commit is tried, and a config that matches neither is not the run's config.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from policies.provenance import COMMIT
from tools.experiment_schema import validate_experiment
from tools.provenance import RUN_FILES_PARAM, config_hash, differing_files, parse_run_files, sha256_bytes

CONFIG_PREFIX = "config."
# Params that must agree between a run and a re-run of it; `seed` and `config_hash` only when the
# re-run keeps the seed (a seed re-run changes both, and nothing else).
SHARED_PINS = ("git_commit", "dataset_content_hash", "feature_pipeline_hash")
SEED_PINS = ("seed", "config_hash")
SEED_PARAM = "config.experiment.seed"
MAX_SEED = 2**32 - 1
# Params a re-run made by reproduce logs (chained with its other params, so vouched like them):
# which run it re-runs, and as what (same_seed: the reproduction; seed: a seed re-run).
REPRODUCTION_OF, REPRODUCTION_KIND = "reproduction_of", "reproduction_kind"


def rerun_seed(seed: int, k: int) -> int:
    """The seed of a run's k-th seed re-run (k >= 1): the seeds after its own, wrapping past MAX_SEED."""
    return (seed + k) % (MAX_SEED + 1)


def reruns(run_id: str, kind: str, params: Mapping[str, str]) -> bool:
    """Whether a run's (vouched) params say reproduce made it to re-run `run_id` as `kind`."""
    return params.get(REPRODUCTION_OF) == run_id and params.get(REPRODUCTION_KIND) == kind


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def unflatten(params: Mapping[str, str], prefix: str = CONFIG_PREFIX) -> dict[str, Any]:
    """The nested document logged under `prefix` (values parsed as JSON where they are JSON)."""
    document: dict[str, Any] = {}
    for key in sorted(k for k in params if k.startswith(prefix)):
        *parents, leaf = key[len(prefix) :].split(".")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                return {}
        node[leaf] = _value(params[key])
    return document


def _validated(document: Any) -> dict[str, Any] | None:
    model, _ = validate_experiment(document)
    return model.model_dump(mode="json") if model is not None else None


def rebuild_config(params: Mapping[str, str], committed: Any = None) -> dict[str, Any] | None:
    """The run's experiment config: from its params, else the config committed at its commit;
    None when neither hashes to the recorded config_hash."""
    recorded = params.get("config_hash")
    for candidate in (unflatten(params), committed):
        for form in (candidate, _validated(candidate) if isinstance(candidate, Mapping) else None):
            if isinstance(form, Mapping) and form and _hash_or_none(form) == recorded:
                return dict(form)
    return None


def _hash_or_none(document: Mapping[str, Any]) -> str | None:
    try:
        return config_hash(document)
    except (TypeError, ValueError):
        return None


def pin_mismatches(original: Mapping[str, str], other: Mapping[str, str], *, same_seed: bool) -> list[str]:
    """Pins (param names) on which a re-run disagrees with the run it re-ran. A seed re-run must
    agree on every config param except the seed."""
    names: Iterable[str] = (*SHARED_PINS, *(SEED_PINS if same_seed else ()))
    found = [name for name in names if not original.get(name) or original.get(name) != other.get(name)]
    if not same_seed:
        keys = {k for k in (*original, *other) if k.startswith(CONFIG_PREFIX) and k != SEED_PARAM}
        found += sorted(k for k in keys if original.get(k) != other.get(k))
    return found


class CommittedBlobs(Protocol):
    """The git port (server/git.py GitRepo)."""

    def blob_at(self, commit: str, relpath: str) -> bytes | None:
        """The stored bytes of `relpath` at `commit`, None when absent. Raises GitRefused."""
        ...


class WorkingTree(CommittedBlobs, Protocol):
    def is_dirty(self) -> bool:
        """True when `git status` shows a tracked file changed."""
        ...


OVERRIDDEN = "config changes for this run only"
OTHER_TRACKED = "another tracked file differs from the commit"
CRLF_ONLY = " (line endings only: CRLF in the working tree where the commit has LF; runs compare bytes, so check it out with LF endings)"


def dirtiness(git: WorkingTree, commit: str | None, used: Mapping[str, str], *, overridden: bool) -> dict[str, Any]:
    """{git_dirty, dirty_files} of a run about to use files with these SHA-256s: dirty when a used
    file is not the blob at `commit` (whatever `git status` says: skip-worktree and
    assume-unchanged hide edits from it), when the config carries changes for this run only, or
    when another tracked file changed. `dirty_files` says which, for the agent to commit."""
    committed = {path: git.blob_at(commit, path) for path in used} if commit else {}
    differing = differing_files(used, committed) if commit else sorted(used)
    reasons = [_described(path, used[path], committed.get(path)) for path in differing] + ([OVERRIDDEN] if overridden else [])
    if reasons:
        return {"git_dirty": True, "dirty_files": reasons}
    other = git.is_dirty()
    return {"git_dirty": other, "dirty_files": [OTHER_TRACKED] if other else []}


def _described(path: str, digest: str, blob: bytes | None) -> str:
    """The path, with why when the bytes differ only in line endings: a checkout under a
    `.gitattributes` `eol=crlf` reads clean to `git status` but did not run the committed bytes."""
    if blob is not None and b"\r\n" not in blob and sha256_bytes(blob.replace(b"\n", b"\r\n")) == digest:
        return path + CRLF_ONLY
    return path


def run_files_check(git: CommittedBlobs, params: Mapping[str, str]) -> dict[str, Any]:
    """Re-check, from a run's recorded `run_files_sha256`, that every file it used is the blob at
    its `git_commit`: {recorded: bool, mismatched: [paths]} (facts for pr.run_clean and
    promotion.run_clean). A run that recorded no hashes cannot be shown clean."""
    used, commit = parse_run_files(params.get(RUN_FILES_PARAM)), str(params.get("git_commit", ""))
    if used is None or not COMMIT.match(commit):
        return {"recorded": False, "mismatched": []}
    committed = {path: git.blob_at(commit, path) for path in used}
    return {"recorded": True, "mismatched": differing_files(used, committed)}
