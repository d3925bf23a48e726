"""Which kind of tracking store a URI names, and where its artifacts go.

    sqlite:/// or file:    embedded store; artifacts under <state_dir>/mlartifacts unless
                           `tracking.artifact_root` says otherwise
    http(s)://, databricks a tracking server: it decides the artifact store (mlflow-artifacts:/
                           with --serve-artifacts, or its --default-artifact-root)
    postgresql://, mysql://, mssql://, oracle://  a database used directly: MLflow would put
                           artifacts wherever the client says, so `tracking.artifact_root` is
                           required and must lie outside the state dir (the state dir is one
                           host's private disk; a shared database with artifacts on one
                           replica's disk would point every other replica at files it cannot read)
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from tools.errors import InvalidInput

REMOTE_SCHEMES = ("http", "https", "databricks")
DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mssql", "oracle")


def scheme_of(uri: str) -> str:
    """The URI's scheme without a driver ("postgresql+psycopg2" -> "postgresql"), lowercase."""
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""


def is_remote(uri: str) -> bool:
    return scheme_of(uri) in REMOTE_SCHEMES


def is_database(uri: str) -> bool:
    return scheme_of(uri) in DATABASE_SCHEMES


def _local_path(location: str) -> Path | None:
    """The directory a location names on this machine (a path or file: URI), None for other URIs."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(location) if not parsed.scheme else None


def artifact_root(tracking_uri: str, configured: str | None, state_dir: Path) -> str | Path:
    """The artifact root mlgate gives experiments it creates: a local directory (Path) or a URI
    (str). Raises InvalidInput for a database URI without `tracking.artifact_root`, or with one
    inside the state dir."""
    if is_database(tracking_uri):
        return _database_artifact_root(configured, state_dir)
    if configured:
        return _local_path(configured) or configured
    return Path(state_dir) / "mlartifacts"


def _database_artifact_root(configured: str | None, state_dir: Path) -> str | Path:
    remediation = "set tracking.artifact_root (or MLGATE_TRACKING_ARTIFACT_ROOT) to a shared directory or an object-store URI outside the state dir, or point tracking_uri at an `mlflow server --serve-artifacts` instead"
    if not configured:
        raise InvalidInput("a database tracking_uri needs an explicit artifact root: MLflow would otherwise write artifacts into the local state dir", remediation, rule_id="tracking.artifact_root")
    local = _local_path(configured)
    if local is None:
        return configured
    local = local.resolve()
    if local == Path(state_dir).resolve() or Path(state_dir).resolve() in local.parents:
        raise InvalidInput(f"tracking.artifact_root {local} lies inside the state dir", remediation, rule_id="tracking.artifact_root")
    return local
