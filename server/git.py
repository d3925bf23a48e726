"""Git adapter. Argument arrays only, hooks and fsmonitor disabled on every call, so a hook or
filter planted in a workspace never runs inside the server. Refs and paths are validated by the
callers' patterns before they reach here; `--` always separates paths.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tools.errors import GitRefused

HARDENING = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.file.allow=always")
IDENTITY = {
    "GIT_AUTHOR_NAME": "mlgate",
    "GIT_AUTHOR_EMAIL": "mlgate@localhost",
    "GIT_COMMITTER_NAME": "mlgate",
    "GIT_COMMITTER_EMAIL": "mlgate@localhost",
}
SAFE_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/-]{1,100}$")
SAFE_PATH = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]{1,200}$")


class GitRepo:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run git with the hardening flags. Raises GitRefused on a non-zero exit when check."""
        import os

        full_env = {**os.environ, **IDENTITY, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
        proc = subprocess.run(["git", *HARDENING, *args], cwd=self.path, capture_output=True, env=full_env, check=False)
        if check and proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["git failed"]
            raise GitRefused(f"git {args[0]} failed: {message[0]}", "check the workspace repository state")
        return proc

    def text(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    @classmethod
    def init(cls, path: Path | str, branch: str = "main") -> GitRepo:
        repo = cls(path)
        repo.run("init", "-q", "-b", branch)
        return repo

    def show(self, ref: str, relpath: str) -> bytes | None:
        """The bytes of `relpath` at `ref`, or None if it does not exist there."""
        if not SAFE_REF.match(ref) or not SAFE_PATH.match(relpath):
            raise GitRefused(f"refused ref or path {ref!r}:{relpath!r}", "use a plain branch name and a relative path")
        proc = self.run("show", f"{ref}:{relpath}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def head(self) -> str | None:
        proc = self.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def resolve(self, ref: str) -> str | None:
        if not SAFE_REF.match(ref):
            raise GitRefused(f"refused ref {ref!r}", "use a plain branch name")
        proc = self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def is_dirty(self) -> bool:
        return bool(self.run("status", "--porcelain", "--untracked-files=no").stdout.strip())

    def commit_all(self, message: str) -> str:
        self.run("add", "-A")
        self.run("commit", "-q", "--no-verify", "-m", message)
        return self.head() or ""

    def commit_paths(self, paths: list[str], message: str) -> str:
        self.run("add", "--", *paths)
        self.run("commit", "-q", "--no-verify", "-m", message, "--", *paths)
        return self.head() or ""
