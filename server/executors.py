"""Executors: what runs a prepared run directory's training child and hands back its result.

Two backends implement the one Protocol, chosen by `executor.backend` in the server config:

    local   server.sandbox.SandboxLauncher: bubblewrap on this host (the default)
    ray     server.ray_executor.RayExecutor: a task on an existing Ray cluster, running the same
            launcher (bubblewrap) on the worker node; outputs are pulled back into the run
            directory and judged here (server/sandbox_outcome.py), exactly as local outputs are

Tools reach the executor as `ports.sandbox` (tools/experiment_runner.py); `mode` says how the
child is confined where it runs ("bwrap", "unconfined", or "unavailable") and `backend` which
executor runs it: run_experiment's rules read both (sandbox.available, executor.isolation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from server.sandbox import SandboxLauncher
from server.sandbox_result import Mode, SandboxResult
from server.sandbox_vocabulary import ProgressStep
from server.settings import Settings

ProgressCallback = Callable[[ProgressStep], Awaitable[None]]


class Executor(Protocol):
    backend: str

    @property
    def mode(self) -> Mode:
        """How the child would be confined where it runs; "unavailable" when it cannot run."""
        ...

    async def run(self, run_dir: Path, timeout_s: float | None = None, on_progress: ProgressCallback | None = None) -> SandboxResult:
        """Run `python -m training` on run_dir (inputs/ written, outputs/ absent or empty) and
        judge outputs/ in this process. A failed child is a SandboxResult with ok=False; raises
        SandboxFailed when the child cannot be run at all. Cancellation kills the child."""
        ...


def build_executor(settings: Settings) -> Executor:
    """The executor the settings choose. Ray is imported only when it is chosen (slow import)."""
    if settings.executor.backend == "ray":
        from server.ray_executor import RayExecutor  # noqa: PLC0415 - optional backend, heavy import

        return RayExecutor.from_settings(settings)
    return SandboxLauncher.from_settings(settings)
