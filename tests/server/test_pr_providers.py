"""PR providers on real repositories: the local one (bare remote + records) and the GitHub one
against a local HTTP server that speaks the REST endpoints it uses (real HTTP, real client)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from server.git import GitRepo
from server.pr_providers import GitHubProvider, LocalProvider, PrRecords, build_provider
from server.settings import GitHubSettings, load_settings
from tools.errors import GitRefused

TOKEN = "ghp_" + "T0k3nV4lu3" * 4
RUN_A, RUN_B = "a" * 32, "b" * 32


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "ws")
    (repo.path / "a.txt").write_text("one\n")
    repo.commit_all("first")
    return repo


def draft(commit: str, run_id: str = RUN_A, branch: str = "agent/x", now: str = "2025-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"branch": branch, "base": "main", "commit": commit, "run_id": run_id, "title": "Better features", "description": f"cites {run_id}", "now": now, **extra}


# --- local --------------------------------------------------------------------------------------


def test_local_provider_creates_the_bare_remote_on_first_use_and_pushes_the_commit(repo: GitRepo, tmp_path: Path) -> None:
    settings = load_settings(repo.path, state_dir=tmp_path / "state")
    provider = build_provider(settings, repo)
    assert isinstance(provider, LocalProvider) and provider.remote_head("agent/x") is None
    provider.push(repo.head() or "", "agent/x")
    assert (tmp_path / "state" / "remote.git" / "HEAD").is_file()
    assert provider.remote_head("agent/x") == repo.head()
    assert GitRepo(tmp_path / "state" / "remote.git").text("config", "--local", "core.hooksPath") == "/dev/null"


def test_local_records_create_then_reuse_then_update_with_history(repo: GitRepo, tmp_path: Path) -> None:
    records = PrRecords(tmp_path / "prs")
    provider = LocalProvider(repo, tmp_path / "remote.git", records)
    commit = repo.head() or ""
    first, changed = provider.submit(draft(commit))
    assert changed and first["id"] == "local#1" and first["state"] == "open" and first["url"] == "mlgate-pr:local-1"
    again, changed = provider.submit(draft(commit, now="2025-01-02T00:00:00Z"))
    assert not changed and again == first
    updated, changed = provider.submit(draft(commit, run_id=RUN_B, now="2025-01-03T00:00:00Z"))
    assert changed and updated["number"] == 1 and updated["run_id"] == RUN_B and updated["created_at"] == first["created_at"]
    assert [h["run_id"] for h in updated["history"]] == [RUN_A, RUN_B]
    other, _ = provider.submit(draft(commit, branch="agent/y"))
    assert other["id"] == "local#2"
    assert [r["id"] for r in records.list()] == ["local#1", "local#2"] and records.for_branch("agent/x")["run_id"] == RUN_B


def test_a_local_pr_is_answered_by_an_identifier_naming_no_host_path_even_when_recorded_with_one(repo: GitRepo, tmp_path: Path) -> None:
    records = PrRecords(tmp_path / "prs")
    provider = LocalProvider(repo, tmp_path / "remote.git", records)
    commit = repo.head() or ""
    first, _ = provider.submit(draft(commit))
    assert first["url"] == "mlgate-pr:local-1" and str(tmp_path) not in json.dumps(first)
    records.save({**first, "url": (records.root / "local-1.json").resolve().as_uri()})  # as an earlier server recorded it
    again, changed = provider.submit(draft(commit))
    assert not changed and again["url"] == "mlgate-pr:local-1" and str(tmp_path) not in json.dumps(again)
    assert (records.root / "local-1.json").is_file()  # the record stays where `mlgate prs` reads it


def test_records_ignore_foreign_files(tmp_path: Path) -> None:
    records = PrRecords(tmp_path / "prs")
    records.root.mkdir()
    (records.root / "notes.json").write_text("{}")
    (records.root / "local-0.json").write_text("{}")
    assert records.list() == [] and records.next_number("local") == 1


# --- GitHub over real HTTP ------------------------------------------------------------------------


class FakeGitHub:
    """The REST endpoints GitHubProvider uses, answered from a real bare repository."""

    def __init__(self, remote: GitRepo, owner: str = "bank", name: str = "credit") -> None:
        self.remote, self.prefix = remote, f"/repos/{owner}/{name}"
        self.pulls: dict[int, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_with: tuple[int, str] | None = None

    def answer(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        self.requests.append({"method": method, "path": url.path, "query": url.query, "auth": headers.get("Authorization"), "body": body.decode()})
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}
        if self.fail_with:
            return self.fail_with[0], {"message": self.fail_with[1]}
        path = url.path.removeprefix(self.prefix)
        if method == "GET" and path.startswith("/git/ref/heads/"):
            sha = self.remote.branch_head(path.removeprefix("/git/ref/heads/"))
            return (200, {"ref": path[9:], "object": {"type": "commit", "sha": sha}}) if sha else (404, {"message": "Not Found"})
        if method == "GET" and path == "/pulls":
            head = parse_qs(url.query)["head"][0].split(":", 1)[1]
            return 200, [p for p in self.pulls.values() if p["head"] == head and p["state"] == "open"]
        if method == "POST" and path == "/pulls":
            data = json.loads(body)
            number = len(self.pulls) + 1
            self.pulls[number] = {**data, "number": number, "state": "open", "html_url": f"https://github.example/bank/credit/pull/{number}"}
            return 201, self.pulls[number]
        if method == "PATCH" and path.startswith("/pulls/"):
            pull = self.pulls[int(path.rsplit("/", 1)[1])]
            pull.update(json.loads(body))
            return 200, pull
        return 404, {"message": "Not Found"}


@pytest.fixture
def github(repo: GitRepo, tmp_path: Path) -> Iterator[tuple[FakeGitHub, str]]:
    fake = FakeGitHub(GitRepo.init_bare(tmp_path / "github.git"))

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = fake.answer(self.command, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _handle

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _provider(repo: GitRepo, tmp_path: Path, api_url: str, fake: FakeGitHub) -> GitHubProvider:
    settings = GitHubSettings(api_url=api_url, repository="bank/credit", git_url=str(fake.remote.path), token_env="MLGATE_TEST_GH_TOKEN", timeout_seconds=5)
    return GitHubProvider(repo, settings, PrRecords(tmp_path / "prs"), "main")


def test_github_provider_pushes_opens_then_updates_the_pr(repo: GitRepo, tmp_path: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = github
    monkeypatch.setenv("MLGATE_TEST_GH_TOKEN", TOKEN)
    provider = _provider(repo, tmp_path, url, fake)
    commit = repo.head() or ""
    assert provider.remote_head("agent/x") is None
    provider.push(commit, "agent/x")
    assert provider.remote_head("agent/x") == commit
    record, changed = provider.submit(draft(commit))
    assert changed and record["id"] == "github#1" and record["url"] == "https://github.example/bank/credit/pull/1"
    assert fake.pulls[1]["head"] == "agent/x" and fake.pulls[1]["base"] == "main" and fake.pulls[1]["body"] == f"cites {RUN_A}"
    calls = len(fake.requests)
    assert provider.submit(draft(commit))[1] is False and len(fake.requests) == calls
    updated, _ = provider.submit(draft(commit, run_id=RUN_B, description=f"cites {RUN_B}"))
    assert fake.requests[-1]["method"] == "PATCH" and fake.pulls[1]["body"] == f"cites {RUN_B}" and updated["number"] == 1
    assert {r["auth"] for r in fake.requests} == {f"Bearer {TOKEN}"}


def test_github_token_never_lands_in_records_or_errors(repo: GitRepo, tmp_path: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = github
    monkeypatch.setenv("MLGATE_TEST_GH_TOKEN", TOKEN)
    provider = _provider(repo, tmp_path, url, fake)
    provider.push(repo.head() or "", "agent/x")
    provider.submit(draft(repo.head() or ""))
    fake.fail_with = (422, "Validation Failed")
    with pytest.raises(GitRefused) as refused:
        provider.submit(draft(repo.head() or "", run_id=RUN_B))
    assert "422" in refused.value.reason and TOKEN not in str(refused.value.as_dict())
    stored = "".join(p.read_text() for p in (tmp_path / "prs").glob("*.json"))
    assert TOKEN not in stored and "T0k3n" not in stored


def test_github_provider_without_token_refuses_before_any_request(repo: GitRepo, tmp_path: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = github
    monkeypatch.delenv("MLGATE_TEST_GH_TOKEN", raising=False)
    provider = _provider(repo, tmp_path, url, fake)
    for call in (lambda: provider.push(repo.head() or "", "agent/x"), lambda: provider.remote_head("agent/x"), lambda: provider.submit(draft(repo.head() or ""))):
        with pytest.raises(GitRefused, match="MLGATE_TEST_GH_TOKEN"):
            call()
    assert fake.requests == [] and fake.remote.branch_head("agent/x") is None


def test_github_provider_unreachable_api_is_a_clear_refusal(repo: GitRepo, tmp_path: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = github
    monkeypatch.setenv("MLGATE_TEST_GH_TOKEN", TOKEN)
    provider = _provider(repo, tmp_path, "http://127.0.0.1:9", fake)
    with pytest.raises(GitRefused, match="unreachable"):
        provider.remote_head("agent/x")


def test_github_provider_needs_a_repository(repo: GitRepo, tmp_path: Path) -> None:
    with pytest.raises(GitRefused, match="repository"):
        GitHubProvider(repo, GitHubSettings(), PrRecords(tmp_path / "prs"), "main")


class RacedRepo(GitRepo):
    """The workspace as the server sees it when an agent rewrites .git/config in a loop: the
    config the server checked is not the config git reads a moment later. `local_config` answers
    with what was read before the agent's edit; git itself reads the file as it is now."""

    def __init__(self, path: Path, before: list[tuple[str, str]]) -> None:
        super().__init__(path)
        self._before = before

    def local_config(self) -> list[tuple[str, str]]:
        return list(self._before)


def test_the_token_carrying_push_never_reads_the_workspace_config(repo: GitRepo, tmp_path: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, url = github
    monkeypatch.setenv("MLGATE_TEST_GH_TOKEN", TOKEN)
    attacker = GitRepo.init_bare(tmp_path / "attacker.git")
    raced = RacedRepo(repo.path, repo.local_config())
    repo.run("config", f"url.{attacker.path}.insteadOf", str(fake.remote.path))
    commit = repo.head() or ""
    _provider(raced, tmp_path, url, fake).push(commit, "agent/x")
    assert fake.remote.branch_head("agent/x") == commit and attacker.branch_head("agent/x") is None
