"""The one module that reads configuration files and the environment.

Order (later wins): configs/server.yaml shipped with mlgate, <state_dir>/server.yaml of the
workspace, then MLGATE_* environment variables, then explicit overrides (CLI flags, tests).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policies import Principal, Role

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PACKAGE_ROOT / "configs"
ENV_KEYS = {"MLGATE_PRINCIPAL": "local_principal", "MLGATE_ROLE": "local_role", "MLGATE_STATE_DIR": "state_dir", "MLGATE_TRACKING_URI": "tracking_uri", "MLGATE_SANDBOX_MODE": "sandbox_mode"}


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # The URL clients use (behind a proxy or a DNS name); default: http://HOST:PORT of the bind.
    public_url: str | None = None
    max_open_requests_per_token: int = Field(64, ge=1, description="Requests one token may hold open at once (SSE and listen streams, calls in flight; 429 past it), and governed calls it may run at once however they came (quota.calls_in_flight past it).")
    max_sessions_per_token: int = Field(100, ge=1, description="Streamable HTTP sessions one token may hold; 429 past it (idle sessions close after 30 minutes).")
    replay_bytes_per_session: int = Field(2 * 2**20, ge=0, description="SSE events one streamable HTTP session keeps so a dropped stream resumes (Last-Event-ID); oldest dropped first; 0: no event ids, nothing resumes.")
    replay_bytes_total: int = Field(256 * 2**20, ge=0, description="SSE events kept for resuming over all sessions together.")


class SandboxLimits(BaseModel):
    """Resource limits of the training child (configs/server.yaml `sandbox:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address_space_bytes: int = Field(8 * 2**30, ge=2**28, description="RLIMIT_AS of the child.")
    gpu_address_space_bytes: int | None = Field(None, ge=2**28, description="RLIMIT_AS when GPUs are bound; null: none (CUDA reserves huge virtual ranges).")
    cpu_seconds: int = Field(3600, ge=1, description="RLIMIT_CPU per process.")
    file_size_bytes: int = Field(4 * 2**30, ge=2**20, description="RLIMIT_FSIZE: largest file the child may write.")
    nproc: int = Field(256, ge=16, description="RLIMIT_NPROC (processes + threads of the sandbox uid).")
    wall_clock_seconds: float = Field(3600, gt=0, description="Upper bound on a run's wall-clock time.")
    threads: int = Field(2, ge=1, le=64, description="OMP/MKL/OpenBLAS threads and library thread pools.")


# host:port (name, IPv4 or [IPv6]) or auto; a ray:// address would need Ray Client, which is not installed
RAY_ADDRESS_PATTERN = r"^(auto|[A-Za-z0-9._-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5})$"


class RayExecutorSettings(BaseModel):
    """Where and how runs go to a Ray cluster (server/ray_executor.py). The address is hashed in
    the acknowledgement pin and never shown: it names the bank's internal hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str | None = Field(None, min_length=1, max_length=500, description="The cluster's GCS address host:port (as `ray start --head` prints it), or auto: RAY_ADDRESS, else the cluster this host started last. Ray Client addresses (ray://) are not supported.")
    namespace: str = Field("mlgate", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Ray namespace of mlgate's tasks.")
    num_cpus: float = Field(1, gt=0, le=1024, description="CPUs a run's task requests from Ray.")
    num_gpus: float = Field(0, ge=0, le=64, description="GPUs a run's task requests from Ray (0: none; CUDA_VISIBLE_DEVICES follows Ray's assignment).")
    scratch_dir: Path | None = Field(None, description="Where a worker makes a run's temporary directory; null: the worker's temp dir.")
    connect_timeout_seconds: float = Field(30.0, gt=0, le=600, description="How long a probe of the workers may take.")
    result_grace_seconds: float = Field(60.0, ge=1, le=3600, description="How long past a run's timeout the server waits for a worker's answer before it cancels the task and fails the run as timed out (a hung or frozen worker); the same bound applies to waiting for a worker to take the run.")

    @field_validator("address")
    @classmethod
    def _gcs_address(cls, address: str | None) -> str | None:
        if address is not None and not re.fullmatch(RAY_ADDRESS_PATTERN, address):
            raise ValueError("must be the GCS address host:port of the head node (as `ray start --head` prints it) or auto; Ray Client addresses (ray://) are not supported")
        return address


class ExecutorSettings(BaseModel):
    """Which backend runs the training child (server/executors.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: Literal["local", "ray"] = "local"
    ray: RayExecutorSettings = Field(default_factory=RayExecutorSettings)

    @model_validator(mode="after")
    def _ray_needs_an_address(self) -> ExecutorSettings:
        if self.backend == "ray" and self.ray.address is None:
            raise ValueError("executor.backend ray needs executor.ray.address")
        return self


class GitHubSettings(BaseModel):
    """The GitHub pull-request provider. The token is read from the environment variable NAMED
    here, at the moment it is needed; it is never a client's token and never logged."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    api_url: str = Field("https://api.github.com", pattern=r"^https?://[^\s@]+$", description="REST API base URL (GitHub Enterprise: https://HOST/api/v3).")
    repository: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$", description="owner/name of the repository PRs are opened on.")
    git_url: str | None = Field(None, description="Where branches are pushed; default https://github.com/<repository>.git.")
    token_env: str = Field("MLGATE_GITHUB_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]{0,63}$", description="Name of the environment variable holding the token.")
    timeout_seconds: float = Field(30.0, gt=0, le=300)

    def token(self) -> str | None:
        return os.environ.get(self.token_env) or None


class PullRequestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Literal["local", "github"] = "local"
    remote_path: Path | None = Field(None, description="Bare repository of the local provider; default <state_dir>/remote.git.")
    mlflow_ui_url: str | None = Field(None, pattern=r"^https?://[^\s@]+$", description="MLflow UI base URL for the link-back in PR descriptions.")
    github: GitHubSettings = Field(default_factory=GitHubSettings)


class AuditSettings(BaseModel):
    """The audit chain's signing key (server/audit/signing.py): a file OUTSIDE the state directory,
    readable only by the server's OS user. Default ~/.config/mlgate/keys/<workspace-id>.ed25519."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    signing_key_path: Path | None = Field(None, description="Ed25519 private key (PKCS#8 PEM, 0600); env MLGATE_AUDIT_SIGNING_KEY.")


def workspace_id(workspace: Path) -> str:
    """A file-name-safe id of a workspace: its directory name and a hash of its absolute path."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", workspace.name).strip("._") or "workspace"
    return f"{name}-{hashlib.sha256(str(workspace).encode()).hexdigest()[:12]}"


class TrackingSettings(BaseModel):
    """Where a database-backed tracking store keeps artifacts, and how servers sharing one tracking
    store tell a live run from an orphan (server/tracking_owners.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    artifact_root: str | None = Field(None, description="Artifact root for a database tracking_uri (postgresql://, mysql://, mssql://): a directory or URI outside the state dir; env MLGATE_TRACKING_ARTIFACT_ROOT.")
    heartbeat_seconds: float = Field(30.0, gt=0, le=3600, description="How often a server refreshes the heartbeat tag of the runs it owns.")
    stale_after_seconds: float = Field(600.0, gt=0, description="A RUNNING run of another host whose heartbeat is older than this is an orphan.")

    @model_validator(mode="after")
    def _stale_after_several_beats(self) -> TrackingSettings:
        if self.stale_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError("tracking.stale_after_seconds must be at least 3 x heartbeat_seconds: one late beat is not a dead owner")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace: Path
    state_dir: Path
    protected_ref: str = "main"
    local_principal: str = "local-agent"
    local_role: Role = "agent"
    transport: str = "stdio"
    sandbox_mode: Literal["bwrap", "unconfined"] = "bwrap"
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    tracking_uri: str | None = None
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    pull_requests: PullRequestSettings = Field(default_factory=PullRequestSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @property
    def local(self) -> Principal:
        return Principal(self.local_principal, self.local_role)

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.jsonl"

    @property
    def audit_signing_key(self) -> Path:
        """Where the audit signing key is (whether or not it exists yet)."""
        return self.audit.signing_key_path or Path.home() / ".config" / "mlgate" / "keys" / f"{workspace_id(self.workspace)}.ed25519"

    @property
    def mlflow_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.state_dir / 'mlflow.db'}"


def _yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


def policy_limits() -> dict[str, Any]:
    """configs/policy.yaml: the numbers the validators and rules use."""
    return _yaml_file(CONFIGS_DIR / "policy.yaml")


# What the acknowledgement pin covers (server/acknowledgements.py): every setting that changes what
# is governed or who may act. The rest is where things are (workspace, state_dir) or how the server
# was reached (transport). A new Settings field must join one of the two tuples (a test checks).
GOVERNED_SETTINGS = ("protected_ref", "local_principal", "local_role", "sandbox_mode", "sandbox", "executor", "tracking_uri", "tracking", "http", "pull_requests", "audit")
UNGOVERNED_SETTINGS = ("workspace", "state_dir", "transport")


def load_file_settings(workspace: Path | str, state_dir: Path | str) -> Settings:
    """The settings the configuration FILES give (shipped configs/server.yaml, then
    <state_dir>/server.yaml), without environment or overrides: what the pin acknowledges. The
    launch environment is the launcher's choice (in server mode, the operator's)."""
    values: dict[str, Any] = {**_yaml_file(CONFIGS_DIR / "server.yaml"), **_yaml_file(Path(state_dir) / "server.yaml")}
    values["workspace"], values["state_dir"] = Path(workspace).resolve(), Path(state_dir).resolve()
    return Settings.model_validate(values)


def load_settings(workspace: Path | str, **overrides: Any) -> Settings:
    workspace = Path(workspace).resolve()
    values: dict[str, Any] = _yaml_file(CONFIGS_DIR / "server.yaml")
    state_dir = Path(overrides.get("state_dir") or os.environ.get("MLGATE_STATE_DIR") or workspace / ".mlgate")
    values.update(_yaml_file(state_dir / "server.yaml"))
    values.update({field: os.environ[key] for key, field in ENV_KEYS.items() if os.environ.get(key)})
    if os.environ.get("MLGATE_AUDIT_SIGNING_KEY"):
        values["audit"] = {**(values.get("audit") or {}), "signing_key_path": os.environ["MLGATE_AUDIT_SIGNING_KEY"]}
    if os.environ.get("MLGATE_TRACKING_ARTIFACT_ROOT"):
        values["tracking"] = {**(values.get("tracking") or {}), "artifact_root": os.environ["MLGATE_TRACKING_ARTIFACT_ROOT"]}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["workspace"], values["state_dir"] = workspace, Path(values.get("state_dir") or state_dir).resolve()
    return Settings.model_validate(values)
