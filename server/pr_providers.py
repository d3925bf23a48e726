"""Where open_pr pushes feature branches and records pull requests.

    PrRecords        one JSON file per PR under <state_dir>/prs/ (both providers keep them, so
                     `mlgate prs` and `mlgate verify-pr` work the same for either)
    LocalProvider    a bare repository (default <state_dir>/remote.git, created on first use) as the
                     remote, PRs only as records, answered as `mlgate-pr:local-<n>` (no host path):
                     the default, fully testable offline
    GitHubProvider   pushes over HTTPS and opens/updates the PR through the REST API; the token is
                     read from the environment variable named in the server config at the moment it
                     is needed, travels to git in the environment (never argv) and is never logged;
                     the push that carries it runs in <state_dir>/github-push.git, never in the
                     workspace (whose config the agent controls)
    RunArtifacts     reads a run's JSON artifacts (the gate receipt) through the tracking adapter

A provider exposes: `name`, `push(commit, branch)`, `remote_head(branch)`, `find(branch)`,
`submit(draft) -> (record, changed)` (tools/open_pr.py declares the Protocol).
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx2

from server.files import locked, read_regular, write_atomic
from server.git import GitRepo, check_branch
from server.mlflow_import import mlflow_module
from server.settings import GitHubSettings, Settings
from tools.errors import GitRefused, IntegrityError, NotFound

RECORD_NAME = re.compile(r"^(local|github)-([1-9][0-9]{0,9})\.json\Z")
SAME_FIELDS = ("run_id", "commit", "title", "description")
MAX_ARTIFACT_BYTES = 1 << 20
MAX_MODEL_ARTIFACT_BYTES = 2 << 30  # as a run's model may hold (server/rundirs.MAX_MODEL_BYTES)
MAX_PREDICTION_BYTES = 256 << 20  # a run's test predictions read to compare it with the champion on the same rows


MAX_RECORD_BYTES = 1 << 20
RECORD_FIELDS = {"provider": str, "number": int, "branch": str, "state": str, "updated_at": str}


def _read_record(path: Path) -> dict[str, Any]:
    """A PR record file, read without following a link or waiting on a FIFO (the state directory is
    the stdio agent's to write). Raises IntegrityError for a file that is not a record: PRs are
    numbered and found from these files, so one that cannot be read is refused, never skipped."""
    try:
        record = json.loads(read_regular(path, MAX_RECORD_BYTES))
    except (OSError, ValueError, RecursionError) as exc:
        raise _unreadable(path, type(exc).__name__) from None
    if not isinstance(record, dict) or any(not isinstance(record.get(k), t) for k, t in RECORD_FIELDS.items()):
        raise _unreadable(path, "not a PR record")
    return record


def _unreadable(path: Path, why: str) -> IntegrityError:
    return IntegrityError(f"the PR record {path.name} cannot be read ({why}); nothing was pushed",
                          f"an operator should restore {path.name} in the state directory's prs/ from a backup, or move it aside",
                          rule_id="pr.records_readable")  # fmt: skip


class PrRecords:
    """PR records, `<provider>-<number>.json`. Written atomically under a lock. With `witness`, each
    saved record and its newest history entry carry the audit chain head (server/audit/witness.py)."""

    def __init__(self, root: Path, witness: Callable[[], str] | None = None) -> None:
        self.root = Path(root)
        self.lock = self.root / ".lock"
        self._witness = witness

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if RECORD_NAME.match(p.name)]

    def list(self) -> list[dict[str, Any]]:
        """Every record. Raises IntegrityError naming a file that is not one (see _read_record)."""
        records = [_read_record(p) for p in self._files()]
        return sorted(records, key=lambda r: (r["provider"], r["number"]))

    def find(self, branch: str, provider: str) -> dict[str, Any] | None:
        """The open PR of `branch` at `provider`, or None."""
        found = [r for r in self.list() if r["branch"] == branch and r["provider"] == provider and r["state"] == "open"]
        return found[-1] if found else None

    def for_branch(self, branch: str) -> dict[str, Any] | None:
        """The newest open PR of `branch` at any provider, or None."""
        found = [r for r in self.list() if r["branch"] == branch and r["state"] == "open"]
        return max(found, key=lambda r: r["updated_at"]) if found else None

    def next_number(self, provider: str) -> int:
        numbers = [r["number"] for r in self.list() if r["provider"] == provider]
        return max(numbers, default=0) + 1

    def save(self, record: Mapping[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._witness is not None:
            record = _witnessed(record, self._witness())
        path = self.root / f"{record['provider']}-{record['number']}.json"
        write_atomic(path, json.dumps(dict(record), sort_keys=True, indent=2).encode())
        return path


def _witnessed(record: Mapping[str, Any], witness: str) -> dict[str, Any]:
    history = [dict(h) for h in record.get("history") or []]
    if history and "audit_witness" not in history[-1]:
        history[-1]["audit_witness"] = witness
    return {**record, "history": history, "audit_witness": witness}


def _unchanged(existing: Mapping[str, Any], draft: Mapping[str, Any]) -> bool:
    return all(existing.get(k) == draft.get(k) for k in SAME_FIELDS)


def _merge(existing: Mapping[str, Any] | None, draft: Mapping[str, Any], number: int, url: str, provider: str) -> dict[str, Any]:
    """The record after submitting `draft`: a new PR, or the existing one citing the new run."""
    fields = {k: v for k, v in draft.items() if k != "now"}
    history = list(existing["history"]) if existing else []
    history.append({"run_id": draft["run_id"], "commit": draft["commit"], "at": draft["now"]})
    created = existing["created_at"] if existing else draft["now"]
    return {**fields, "provider": provider, "number": number, "id": f"{provider}#{number}", "url": url, "state": "open", "created_at": created, "updated_at": draft["now"], "history": history}


class LocalProvider:
    """PR branches go to a bare repository; PRs are records only."""

    name = "local"

    def __init__(self, repo: GitRepo, remote_path: Path, records: PrRecords) -> None:
        self.repo = repo
        self.remote_path = Path(remote_path)
        self.records = records

    def _remote(self) -> GitRepo:
        if not (self.remote_path / "HEAD").is_file():
            return GitRepo.init_bare(self.remote_path)
        return GitRepo(self.remote_path)

    def push(self, commit: str, branch: str) -> None:
        self._remote()
        self.repo.push(str(self.remote_path.resolve()), commit, branch)

    def remote_head(self, branch: str) -> str | None:
        if not (self.remote_path / "HEAD").is_file():
            return None
        return GitRepo(self.remote_path).branch_head(check_branch(branch))

    def find(self, branch: str) -> dict[str, Any] | None:
        return self.records.find(branch, self.name)

    def submit(self, draft: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or update the PR of draft['branch']; returns (record, changed)."""
        with locked(self.records.lock):
            existing = self.find(draft["branch"])
            if existing is not None and _unchanged(existing, draft):
                return {**existing, "url": local_pr_url(existing["number"])}, False  # an earlier server recorded a file:// URL
            number = existing["number"] if existing else self.records.next_number(self.name)
            record = _merge(existing, draft, number, local_pr_url(number), self.name)
            self.records.save(record)
            return record, True


def local_pr_url(number: int) -> str:
    """A local PR's identifier for agents: `mlgate-pr:local-<n>`. Never the record's file URL, which
    would tell a remote agent where the server keeps its state (`mlgate prs` shows the records)."""
    return f"mlgate-pr:{LocalProvider.name}-{number}"


class GitHubProvider:
    """PR branches pushed to GitHub over HTTPS; PRs opened and updated through the REST API."""

    name = "github"

    def __init__(self, repo: GitRepo, settings: GitHubSettings, records: PrRecords, base: str, transport: httpx2.BaseTransport | None = None) -> None:
        if settings.repository is None:
            raise GitRefused("the github PR provider has no repository configured", "set pull_requests.github.repository (owner/name) in the server config", rule_id="pr.provider")
        self.repo = repo
        self.staging_path = records.root.parent / "github-push.git"
        self.settings = settings
        self.records = records
        self.base = base
        self._transport = transport

    # --- credentials (never logged, never in argv, never in a result) ---------------------------

    def _token(self) -> str:
        token = self.settings.token()
        if not token:
            raise GitRefused(
                f"no GitHub token: the environment variable {self.settings.token_env} is not set for the server",
                f"the operator sets {self.settings.token_env} in the server's environment (a client's token is never used)",
                rule_id="pr.provider",
            )
        return token

    def _client(self) -> httpx2.Client:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "mlgate"}
        return httpx2.Client(base_url=self.settings.api_url.rstrip("/"), headers=headers, timeout=self.settings.timeout_seconds, trust_env=False, transport=self._transport)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            with self._client() as client:
                return client.request(method, f"/repos/{self.settings.repository}{path}", **kwargs)
        except httpx2.HTTPError as exc:
            raise GitRefused(f"GitHub API unreachable ({type(exc).__name__})", "check pull_requests.github.api_url and the network, then call again", rule_id="pr.provider") from None

    @staticmethod
    def _expect(response: httpx2.Response, *codes: int) -> Any:
        if response.status_code in codes:
            return response.json() if response.content else None
        message = str(_json_or_empty(response).get("message", ""))[:200]
        raise GitRefused(f"GitHub API answered {response.status_code}: {message}", "check the repository, the token's permissions and the branch", rule_id="pr.provider")

    # --- provider -------------------------------------------------------------------------------

    def git_url(self) -> str:
        return self.settings.git_url or f"https://github.com/{self.settings.repository}.git"

    def push(self, commit: str, branch: str) -> None:
        """Push exactly `commit` from a bare repository the server owns: it gets the commit from
        the workspace first (no token), then pushes on with the token. The workspace's config,
        which an agent may rewrite between the server's check and git's own read, never applies
        to the push that carries the token."""
        basic = base64.b64encode(f"x-access-token:{self._token()}".encode()).decode()
        staging = GitRepo(self.staging_path) if (self.staging_path / "HEAD").is_file() else GitRepo.init_bare(self.staging_path)
        staging.run("update-ref", "-d", f"refs/heads/{check_branch(branch)}")  # its own copy never blocks a push
        self.repo.push(str(self.staging_path.resolve()), commit, branch)
        staging.push(self.git_url(), commit, branch, config=[("http.extraHeader", f"Authorization: Basic {basic}")])

    def remote_head(self, branch: str) -> str | None:
        response = self._call("GET", f"/git/ref/heads/{check_branch(branch)}")
        if response.status_code == 404:
            return None
        found = self._expect(response, 200)
        obj = found.get("object") if isinstance(found, dict) else None
        return obj.get("sha") if isinstance(obj, dict) and obj.get("type") == "commit" else None

    def find(self, branch: str) -> dict[str, Any] | None:
        return self.records.find(branch, self.name)

    def _open_pull(self, branch: str) -> dict[str, Any] | None:
        owner = str(self.settings.repository).split("/", 1)[0]
        pulls = self._expect(self._call("GET", "/pulls", params={"head": f"{owner}:{branch}", "base": self.base, "state": "open"}), 200)
        return pulls[0] if isinstance(pulls, list) and pulls else None

    def submit(self, draft: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Open the PR, or update the open one of the branch; returns (record, changed)."""
        with locked(self.records.lock):
            existing = self.find(draft["branch"])
            if existing is not None and _unchanged(existing, draft):
                return existing, False
            payload = {"title": draft["title"], "body": draft["description"]}
            pull = self._open_pull(draft["branch"])
            if pull is None:
                pull = self._expect(self._call("POST", "/pulls", json={**payload, "head": draft["branch"], "base": self.base}), 201)
            else:
                pull = self._expect(self._call("PATCH", f"/pulls/{int(pull['number'])}", json=payload), 200)
            record = _merge(existing, draft, int(pull["number"]), str(pull.get("html_url", "")), self.name)
            self.records.save(record)
            return record, True


def _json_or_empty(response: httpx2.Response) -> dict[str, Any]:
    try:
        loaded = response.json()
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


class RunArtifacts:
    """JSON artifacts of a run, read through the tracking adapter's MLflow client."""

    def __init__(self, tracking: Any) -> None:
        self._tracking = tracking

    def read_json(self, run_id: str, name: str, limit: int | None = None) -> Any | None:
        """The parsed artifact `name` of the run, or None when the run has no such artifact (or one
        over `limit` bytes, default MAX_ARTIFACT_BYTES, or not JSON)."""
        MlflowException = mlflow_module("mlflow.exceptions").MlflowException  # first use under the import lock

        with tempfile.TemporaryDirectory(prefix="mlgate-artifact-") as scratch:
            try:
                local = Path(self._tracking.client.download_artifacts(run_id, name, scratch))
            except (MlflowException, OSError):
                return None
            if not local.is_file() or local.stat().st_size > (limit or MAX_ARTIFACT_BYTES):
                return None
            try:
                return json.loads(local.read_bytes())
            except ValueError:
                return None

    def read_model_files(self, run_id: str, limit: int = MAX_MODEL_ARTIFACT_BYTES) -> dict[str, bytes] | None:
        """{name: bytes} of the plain files directly under the run's `model/` artifact, or None when it
        has none, holds more than `limit` bytes, or cannot be read."""
        MlflowException = mlflow_module("mlflow.exceptions").MlflowException  # first use under the import lock

        with tempfile.TemporaryDirectory(prefix="mlgate-artifact-") as scratch:
            try:
                local = Path(self._tracking.client.download_artifacts(run_id, "model", scratch))
                files = sorted(p for p in local.iterdir() if p.is_file() and not p.is_symlink())
                if not files or sum(p.stat().st_size for p in files) > limit:
                    return None
                return {p.name: p.read_bytes() for p in files}
            except (MlflowException, OSError):
                return None

    def read_predictions(self, run_id: str, name: str = "test_predictions.parquet") -> Any | None:
        """The run's scored test rows `{__row_id__, score, label}` as a DataFrame, or None when the
        artifact is missing, too large (MAX_PREDICTION_BYTES) or not such a table."""
        import pandas as pd  # noqa: PLC0415 (deferred: slow import)
        MlflowException = mlflow_module("mlflow.exceptions").MlflowException

        with tempfile.TemporaryDirectory(prefix="mlgate-artifact-") as scratch:
            try:
                local = Path(self._tracking.client.download_artifacts(run_id, name, scratch))
                if not local.is_file() or local.stat().st_size > MAX_PREDICTION_BYTES:
                    return None
                frame = pd.read_parquet(local)
            except (MlflowException, OSError, ValueError):
                return None
        return frame if {"__row_id__", "score", "label"} <= set(frame.columns) else None


def tracking_for(settings: Settings) -> Any:
    """The MLflow tracking adapter for a workspace (used where no server ports exist: the CLI)."""
    from server.tracking import MlflowTracking  # noqa: PLC0415

    return MlflowTracking.for_settings(settings)


def build_provider(
    settings: Settings, repo: GitRepo, *, transport: httpx2.BaseTransport | None = None, witness: Callable[[], str] | None = None
) -> LocalProvider | GitHubProvider:
    """The configured PR provider (its records witness the audit head when `witness` is given).
    Raises GitRefused when the github provider lacks a repository."""
    config = settings.pull_requests
    records = PrRecords(settings.state_dir / "prs", witness)
    if config.provider == "github":
        return GitHubProvider(repo, config.github, records, settings.protected_ref, transport)
    return LocalProvider(repo, config.remote_path or settings.state_dir / "remote.git", records)


def record_for(settings: Settings, branch: str) -> dict[str, Any]:
    """The open PR record of `branch`. Raises NotFound."""
    record = PrRecords(settings.state_dir / "prs").for_branch(check_branch(branch))
    if record is None:
        raise NotFound(f"no open PR record cites a run for {branch}", "open the PR with the open_pr tool; it records the run id", rule_id="pr.not_found")
    return record
