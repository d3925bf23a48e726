"""Shared moves of the git attack tests."""

from __future__ import annotations

import os
from pathlib import Path


def rewrite_same_size(path: Path, text: str) -> None:
    """Same size, later mtime: git must read the file (through its clean filter) to compare it."""
    path.write_text(text)
    later = path.stat().st_mtime + 5
    os.utime(path, (later, later))
