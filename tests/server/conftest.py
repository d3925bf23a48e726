"""Fixtures shared by the tests of this directory: one private PostgreSQL cluster and one `mlflow
server` on it per test session (tests/postgres.py); a local Ray head per module (ray_cluster)."""

import shutil
import signal
import tempfile
from collections.abc import Iterator

import pytest

from tests.postgres import postgres, tracking_server

__all__ = ["postgres", "ray_cluster", "tracking_server"]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray head on this host (token authentication on, as Ray 2.60 defaults); its session
    directory in a short private temp dir (Ray's socket paths must stay under 108 bytes). One per
    module, not per session: a module's test of an unreachable cluster needs a process that has not
    joined one (a process joins one cluster), so the head goes at the end of the module that used it."""
    ray = pytest.importorskip("ray")
    session = tempfile.mkdtemp(prefix="mlgr-")
    # One GPU declared (none is needed to schedule on it): a run asking for it holds it while it runs.
    # The head and its workers start with SIGINT ignored, as under a launcher that ignores it: the
    # workers must still hear Ray's polite cancel (server/ray_worker.py), or cancelled runs leave
    # their run directories behind
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=session, log_to_driver=False, namespace="mlgate")
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(session, ignore_errors=True)
