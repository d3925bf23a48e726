"""Facts about the host and the workspace files a run depends on (Tier 1/2 provenance)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from server.settings import PACKAGE_ROOT
from tools.errors import InvalidInput

WORKSPACE_FILES = ("src/features.py",)


class Environment:
    def __init__(self, workspace: Path, lock_path: Path = PACKAGE_ROOT / "uv.lock") -> None:
        self._workspace = workspace
        self._lock_path = lock_path

    def lock_bytes(self) -> bytes:
        """uv.lock of the environment that trains (empty when mlgate runs from a wheel without it)."""
        return self._lock_path.read_bytes() if self._lock_path.is_file() else b""

    def workspace_file(self, relpath: str) -> bytes:
        """Bytes of one of the few workspace files a run reads; raises InvalidInput otherwise."""
        if relpath not in WORKSPACE_FILES:
            raise InvalidInput(f"{relpath} is not a file runs read", "report this to the operator")
        path = self._workspace / relpath
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"{relpath} is missing or not a regular file", f"restore {relpath} (git checkout main -- {relpath})", rule_id="workspace.file")
        return path.read_bytes()

    def hardware(self) -> dict[str, object]:
        return {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count() or 0, "ram_bytes": _ram_bytes(), "platform": platform.platform(), "python": platform.python_version()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0
