"""Git adapter. Every ref and path that reaches git is hostile until checked.

- Argument arrays only; refs and paths are validated by allowlist patterns before they reach git;
  `--` always separates paths; commits are 40 hex; branch names a tool may create or push match
  the agent allowlist (policies/provenance.branch_problem), so the protected branch never does.
- Nothing in the workspace runs inside the server: hooks and fsmonitor are disabled on every call,
  system and global config are not read (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL=/dev/null), the
  server's own GIT_* environment is dropped, and every repository-local config entry that would
  run a program (filter, textconv, external diff, merge driver, pager, editor ...) is overridden
  with an inert value for that call. Overrides travel as GIT_CONFIG_KEY_n/VALUE_n, which git
  never re-parses, so a driver name with '=' or '.' in it cannot dodge them. Status and push never
  recurse into submodules, whose own config is never read here.
- Pushes refuse a repository config that could redirect or intercept them (url.*, http.*,
  credential.*, remote.<url>.*) and run the receiving side with its hooks disabled.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from policies.provenance import COMMIT, branch_problem
from tools.errors import GitRefused

HARDENING = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.attributesFile=/dev/null",
    "-c", "commit.gpgSign=false",
    "-c", "tag.gpgSign=false",
    "-c", "credential.helper=",
    "-c", "protocol.file.allow=always",
    # Diff headers name unusual paths in C-quoted ASCII, the one form _unquote reads back exactly.
    "-c", "core.quotePath=true",
    # Never start git inside a submodule: its own config (filters, remotes, ssh commands) is the
    # agent's and is not made inert here. A submodule moved to another commit still reads as dirty.
    "-c", "diff.ignoreSubmodules=dirty",
    "-c", "diff.submodule=short",
    "-c", "submodule.recurse=false",
    "-c", "push.recurseSubmodules=no",
    # Transports that run a command, pinned here whatever the workspace's config says at the moment
    # git reads it (the inert overrides below only cover what the server read just before).
    "-c", "protocol.ext.allow=never",
    "-c", "protocol.git.allow=never",
    "-c", "core.sshCommand=ssh",
    # Objects as stored: a replace ref (`git replace GOOD CHEAT`) would show CHEAT's tree under
    # GOOD's id to every read here while a push sends GOOD (also GIT_NO_REPLACE_OBJECTS below).
    "-c", "core.useReplaceRefs=false",
)  # fmt: skip
IDENTITY = {
    "GIT_AUTHOR_NAME": "mlgate",
    "GIT_AUTHOR_EMAIL": "mlgate@localhost",
    "GIT_COMMITTER_NAME": "mlgate",
    "GIT_COMMITTER_EMAIL": "mlgate@localhost",
}
# History as committed: no replace objects, and no grafts file (.git/info/grafts would give a commit
# invented parents, making it reachable from a branch that never held it).
ISOLATION = {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_ATTR_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat",
    "GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": os.devnull,
}  # fmt: skip
# Server environment passed on to git: TLS trust settings only.
PASSED_GIT_ENV = ("GIT_SSL_CAINFO", "GIT_SSL_CAPATH")
SAFE_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/-]{1,100}\Z")
SAFE_PATH = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]{1,200}\Z")
# Repository-local config that makes git run a program, and the inert value used instead.
INERT = (
    (re.compile(r"^filter\..+\.(clean|smudge|process)$", re.S), ""),
    (re.compile(r"^filter\..+\.required$", re.S), "false"),
    (re.compile(r"^diff\..+\.(textconv|command)$", re.S), ""),
    (re.compile(r"^merge\..+\.driver$", re.S), ""),
    (re.compile(r"^(diff\.external|core\.(pager|editor|askpass|sshcommand|gitproxy|alternaterefscommand)|sequence\.editor)$"), ""),
    (re.compile(r"^protocol\.(?!file\.allow$).+\.allow$", re.S), "never"),
)
REDIRECTING = re.compile(r"^(url|http|credential)\.", re.S)
# The receiving side of a push to a local path runs with its hooks disabled too.
RECEIVE_PACK = "git -c core.hooksPath=/dev/null receive-pack"
NO_COMMIT = "0" * 40
# --text: a file the workspace marks binary (.gitattributes, .git/info/attributes, a low
# core.bigFileThreshold) would show as "Binary files differ" and hide its added lines from the guard.
DIFF_FLAGS = ("--no-color", "--no-textconv", "--no-ext-diff", "--no-renames", "--text")


def check_commit(commit: str) -> str:
    """Raises GitRefused unless `commit` is a full 40-hex commit id."""
    if not isinstance(commit, str) or not COMMIT.match(commit):
        raise GitRefused(f"refused commit id {str(commit)[:60]!r}", "commit ids are 40 lowercase hex characters")
    return commit


def check_branch(name: str) -> str:
    """Raises GitRefused unless `name` is an allowed feature branch (agent/...). The protected
    branch never is, so nothing that calls this can write or push main."""
    problem = branch_problem(name)
    if problem is not None:
        raise GitRefused(f"refused branch name: {problem}", "use a branch such as agent/my-change", rule_id="pr.branch_allowed")
    return name


def _environment(config: Sequence[tuple[str, str]], extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in PASSED_GIT_ENV}
    env.update(IDENTITY, **ISOLATION)
    env.update(extra or {})
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"], env[f"GIT_CONFIG_VALUE_{index}"] = key, value
    return env


def _unquote(path: str) -> str:
    """A path as git prints it in diff headers (C-quoted when it holds unusual characters)."""
    if not path.startswith('"'):
        return path
    return path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def parse_added_lines(patch: str) -> dict[str, list[tuple[int, str]]]:
    """{path: [(line number, added line), ...]} from a `git diff -U0 --no-prefix` patch
    (deleted files omitted)."""
    added: dict[str, list[tuple[int, str]]] = {}
    current: str | None = None
    number, in_header = 0, False
    for line in patch.splitlines():
        hunk = HUNK.match(line)
        if line.startswith("diff --git "):
            current, in_header = None, True  # a file's headers run from here to its first hunk
        elif hunk:
            number, in_header = int(hunk.group(1)), False
        elif in_header and line.startswith("+++ "):
            # inside a hunk, "+++ x" is the added line "++ x", never a file name
            # git ends the name with a tab when it holds a space; a name with a tab is quoted
            target = line[4:].removesuffix("\t")
            current = None if target == "/dev/null" else _unquote(target)
            if current is not None:
                added.setdefault(current, [])
        elif line.startswith("+") and current is not None:
            added[current].append((number, line[1:]))
            number += 1
    return added


def _blob_id(algorithm: str, size: int, chunks: Iterable[bytes]) -> str:
    """The id git gives a blob of `size` bytes read as `chunks` (a file that changes while it is
    read gets an id no blob has, so it reads as changed)."""
    digest = hashlib.new(algorithm, b"blob %d\0" % size)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


class GitRepo:
    # A git that never ends (a config include of a named pipe, a remote that stops answering) must
    # not hold a server thread, and the tool call waiting on it, for ever.
    timeout_seconds = 300.0

    def __init__(self, path: Path | str, env: dict[str, str] | None = None) -> None:
        """`env`: GIT_* variables to keep for every call (a hook passes git's GIT_INDEX_FILE)."""
        self.path = Path(path)
        self.env = dict(env or {})

    # --- running git --------------------------------------------------------------------------

    def _spawn(self, argv: list[str], env: dict[str, str], name: str) -> subprocess.CompletedProcess[bytes]:
        """Raises GitRefused (git.timeout) when git runs longer than timeout_seconds (it is killed)."""
        try:
            return subprocess.run(argv, cwd=self.path, capture_output=True, env=env, check=False, timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            raise GitRefused(
                f"git {name} did not finish within {self.timeout_seconds:g} s",
                "check the workspace's .git/config (an include of a pipe or device, a remote that does not answer), then call again",
                rule_id="git.timeout",
            ) from None

    def local_config(self) -> list[tuple[str, str]]:
        """(key, value) of the repository's own config, includes followed (nothing else is read).
        Raises GitRefused when git does not finish in time."""
        proc = self._spawn(["git", "config", "--list", "-z", "--includes"], _environment((), None), "config")
        entries = proc.stdout.decode("utf-8", "replace").split("\0") if proc.returncode == 0 else []
        return [tuple(e.split("\n", 1)) if "\n" in e else (e, "") for e in entries if e]  # type: ignore[misc]

    def inert_overrides(self) -> list[tuple[str, str]]:
        """An inert value for every local config entry that would run a program."""
        overrides = []
        for key, _ in self.local_config():
            overrides.extend((key, value) for pattern, value in INERT if pattern.match(key))
        return overrides

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None, config: Iterable[tuple[str, str]] = ()) -> subprocess.CompletedProcess[bytes]:
        """Run git with the hardening flags; `config` adds (key, value) settings for this call.
        Raises GitRefused on a non-zero exit when check, and always when git does not finish in time."""
        settings = [*self.inert_overrides(), *config]
        proc = self._spawn(["git", *HARDENING, *args], _environment(settings, {**self.env, **(env or {})}), args[0])
        if check and proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["git failed"]
            raise GitRefused(f"git {args[0]} failed: {message[0]}", "check the workspace repository state")
        return proc

    def text(self, *args: str) -> str:
        return self.run(*args).stdout.decode().strip()

    @classmethod
    def init(cls, path: Path | str, branch: str = "main") -> GitRepo:
        Path(path).mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.run("init", "-q", "-b", branch)
        return repo

    @classmethod
    def init_bare(cls, path: Path | str, branch: str = "main") -> GitRepo:
        """A bare repository whose own config also disables hooks (a remote for PR branches)."""
        Path(path).mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.run("init", "-q", "--bare", "-b", branch)
        repo.run("config", "--local", "core.hooksPath", "/dev/null")
        return repo

    # --- reading ------------------------------------------------------------------------------

    def show(self, ref: str, relpath: str) -> bytes | None:
        """The bytes of `relpath` at `ref`, or None if it does not exist there."""
        if not SAFE_REF.match(ref) or not SAFE_PATH.match(relpath):
            raise GitRefused(f"refused ref or path {ref!r}:{relpath!r}", "use a plain branch name and a relative path")
        proc = self.run("show", f"{ref}:{relpath}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def blob_at(self, commit: str, relpath: str) -> bytes | None:
        """The raw blob of `relpath` in commit `commit` (no filter, textconv or eol conversion:
        the bytes git stores), or None when the commit holds no such file. Raises GitRefused for
        a refused commit id or path."""
        if not SAFE_PATH.match(relpath):
            raise GitRefused(f"refused path {relpath!r}", "use a relative path")
        proc = self.run("cat-file", "blob", f"{check_commit(commit)}:{relpath}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def staged(self, relpath: str) -> bytes | None:
        """The bytes of `relpath` in the index (what the next commit holds), or None."""
        if not SAFE_PATH.match(relpath):
            raise GitRefused(f"refused path {relpath!r}", "use a relative path")
        proc = self.run("cat-file", "blob", f":{relpath}", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def head(self) -> str | None:
        proc = self.run("rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def resolve(self, ref: str) -> str | None:
        if not SAFE_REF.match(ref):
            raise GitRefused(f"refused ref {ref!r}", "use a plain branch name")
        proc = self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def branch_head(self, branch: str) -> str | None:
        """The commit `refs/heads/<branch>` points at, or None when the branch does not exist."""
        return self.resolve(f"refs/heads/{branch}")

    def current_branch(self) -> str | None:
        proc = self.run("symbolic-ref", "-q", "--short", "HEAD", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def branches_at(self, commit: str, prefix: str = "refs/heads/agent/") -> list[str]:
        """Short names of the branches under `prefix` whose head is `commit`."""
        out = self.text("for-each-ref", f"--points-at={check_commit(commit)}", "--format=%(refname:short)", "--", prefix)
        return [line for line in out.splitlines() if line]

    def merge_heads(self) -> list[str]:
        """The commits of a merge in progress (.git/MERGE_HEAD), empty when none is."""
        path = Path(self.text("rev-parse", "--git-path", "MERGE_HEAD"))
        path = path if path.is_absolute() else self.path / path
        lines = path.read_text().split() if path.is_file() else []
        return [line for line in lines if COMMIT.match(line)]

    def has_commit(self, commit: str) -> bool:
        return self.run("cat-file", "-e", f"{check_commit(commit)}^{{commit}}", check=False).returncode == 0

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when `ancestor` is contained in `descendant` (both commit ids or safe refs)."""
        for ref in (ancestor, descendant):
            if not SAFE_REF.match(ref):
                raise GitRefused(f"refused ref {ref!r}", "use a plain branch name or commit id")
        return self.run("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        for ref in (a, b):
            if not SAFE_REF.match(ref):
                raise GitRefused(f"refused ref {ref!r}", "use a plain branch name or commit id")
        proc = self.run("merge-base", a, b, check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def changed_paths(self, base: str, head: str) -> list[str]:
        """Paths that differ between two commits."""
        out = self.run("diff", "--name-only", "-z", *DIFF_FLAGS, check_commit(base), check_commit(head), "--").stdout
        return [p for p in out.decode("utf-8", "replace").split("\0") if p]

    def added_lines(self, base: str, head: str) -> dict[str, list[tuple[int, str]]]:
        """{path: lines added} from `base` to `head` (both commit ids)."""
        patch = self.run("diff", "-U0", "--no-prefix", *DIFF_FLAGS, check_commit(base), check_commit(head), "--").stdout
        return parse_added_lines(patch.decode("utf-8", "replace"))

    def staged_paths(self) -> list[str]:
        out = self.run("diff", "--cached", "--name-only", "-z", *DIFF_FLAGS, "--").stdout
        return [p for p in out.decode("utf-8", "replace").split("\0") if p]

    def staged_added_lines(self) -> dict[str, list[tuple[int, str]]]:
        """{path: lines added} by what is staged for the next commit."""
        patch = self.run("diff", "--cached", "-U0", "--no-prefix", *DIFF_FLAGS, "--").stdout
        return parse_added_lines(patch.decode("utf-8", "replace"))

    def is_dirty(self) -> bool:
        """True when the index differs from HEAD or a tracked file from the index (untracked files
        aside). The working tree is hashed here, byte for byte, never by git: git would read it
        through filters named in the workspace's config, which the agent may rewrite between the
        server's check of that config and git's own read. Raises GitRefused when git fails."""
        if self.head() is not None and self._differs_from_head():
            return True
        entries = self.run("ls-files", "--stage", "-z").stdout.split(b"\0")
        links = [e.split(b"\t", 1)[1].decode("utf-8", "surrogateescape") for e in entries if e.startswith(b"160000 ")]
        if links and self.run("diff-files", "--quiet", "--ignore-submodules=dirty", "--", *links, check=False).returncode != 0:
            return True  # a submodule moved to another commit (its own work tree is never entered)
        return any(self._file_differs(entry) for entry in entries if entry and not entry.startswith(b"160000 "))

    def _differs_from_head(self) -> bool:
        proc = self.run("diff-index", "--cached", "--quiet", "--ignore-submodules=dirty", "HEAD", "--", check=False)
        if proc.returncode not in (0, 1):
            raise GitRefused("git diff-index failed", "check the workspace repository state")
        return proc.returncode == 1

    def _file_differs(self, entry: bytes) -> bool:
        """Whether the work tree file of an `ls-files --stage` entry is not that blob and mode."""
        info, name = entry.split(b"\t", 1)
        mode, blob, stage = info.decode().split(" ")
        found = self._worktree_object(name.decode("utf-8", "surrogateescape"), "sha256" if len(blob) == 64 else "sha1")
        return stage != "0" or found != (mode, blob)

    def _worktree_object(self, relpath: str, algorithm: str) -> tuple[str, str] | None:
        """(git mode, blob id) of a work tree path, as git would store it unfiltered; None when it
        is missing, lies beyond a symbolic link (git does not follow those) or is no file or link."""
        path = self.path / relpath
        try:
            if any(stat.S_ISLNK(os.lstat(parent).st_mode) for parent in list(path.parents)[: relpath.count("/")]):
                return None
            found = os.lstat(path)
            if stat.S_ISLNK(found.st_mode):
                target = os.fsencode(os.readlink(path))
                return "120000", _blob_id(algorithm, len(target), [target])
            if not stat.S_ISREG(found.st_mode):
                return None
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as stream:
            blob = _blob_id(algorithm, found.st_size, iter(lambda: stream.read(1 << 20), b""))
        return ("100755" if found.st_mode & 0o100 else "100644"), blob

    # --- writing ------------------------------------------------------------------------------

    def commit_all(self, message: str) -> str:
        self.run("add", "-A")
        self.run("commit", "-q", "--no-verify", "-m", message)
        return self.head() or ""

    def commit_paths(self, paths: list[str], message: str) -> str:
        self.run("add", "--", *paths)
        self.run("commit", "-q", "--no-verify", "-m", message, "--", *paths)
        return self.head() or ""

    def create_branch(self, branch: str, commit: str) -> bool:
        """Create feature branch `branch` at `commit` unless it exists (atomic: update-ref with an
        expected old value of 'none'). Returns False when it already existed. Raises GitRefused
        for a refused name or commit."""
        ref = f"refs/heads/{check_branch(branch)}"
        proc = self.run("update-ref", "-m", "mlgate: open_pr", ref, check_commit(commit), NO_COMMIT, check=False)
        return proc.returncode == 0

    def remove_created_branch(self, branch: str, commit: str) -> None:
        """The undo of create_branch when what followed failed: deletes `branch` only while it still
        points at `commit` (update-ref -d with that expected old value)."""
        self.run("update-ref", "-d", f"refs/heads/{check_branch(branch)}", check_commit(commit), check=False)

    def push(self, remote: str, commit: str, branch: str, *, config: Iterable[tuple[str, str]] = (), env: dict[str, str] | None = None) -> None:
        """Push exactly `commit` to `refs/heads/<branch>` of `remote` (a path or URL), never forced.
        Raises GitRefused for a refused branch/commit, a redirecting repository config, or a
        rejected push."""
        refspec = f"{check_commit(commit)}:refs/heads/{check_branch(branch)}"
        self._refuse_redirects(remote)
        proc = self.run("push", "--porcelain", "--no-verify", f"--receive-pack={RECEIVE_PACK}", "--", remote, refspec, check=False, config=config, env=env)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stdout.decode(errors="replace").splitlines() if ln.startswith("!")]
            lines += proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
            reason = lines[0] if lines else "push failed"
            raise GitRefused(f"push of {branch} was rejected: {reason}", "the remote branch has commits this run's commit does not contain; use another branch name", rule_id="pr.push")

    def _refuse_redirects(self, remote: str) -> None:
        found = sorted({key for key, _ in self.local_config() if REDIRECTING.match(key) or key.startswith(f"remote.{remote}.")})
        if found:
            raise GitRefused(
                f"the workspace's git config has entries that could redirect or intercept a push: {found[:5]}",
                "remove them from .git/config (git config --unset ...) and call again",
                rule_id="git.config_refused",
            )
