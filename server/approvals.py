"""Adapters behind propose_config_change and decide_approval.

    ApprovalStore   pending/approved/denied/consumed approvals in the state directory, one JSON
                    file each, bound to a change hash; decisions are final, approvals are used once;
                    every answer is vouched by the audit chain (server/approval_vouch.py)
    OverridesLog    appends to the workspace's logs/protected_overrides.log (a record, never a source),
                    each line witnessed by an audit record listing its hash (server/audit/overrides.py)
    ConfigFiles     reads and atomically writes configs/experiment.yaml and configs/reasoning.yaml

Every read-modify-write holds an exclusive `flock`, so the server and the `mlgate approvals` CLI
(separate processes) never interleave. Files are written to a temp file, fsynced and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from policies import Principal
from server import roundtrip_yaml, safe_yaml
from server.approval_vouch import UNVOUCHED, check_approver, described_sha256, is_approval_file, vouched
from server.audit.overrides import OVERRIDES_LOG, chained_records, logged_record, missing_lines, read_log
from server.files import fsync_dir, locked, open_regular, write_atomic, write_temp
from server.ledger import IN_FORCE_KIND, ChainLedger, ChainWriter, actor
from tools.errors import IntegrityError, InvalidInput, NotFound, PolicyDenied

APPROVAL_ID = re.compile(r"^apr-[0-9a-f]{12}\Z")
CHANGE_HASH = re.compile(r"^[0-9a-f]{64}\Z")
LOG_FIELDS = ("timestamp", "field", "old", "new", "approver", "config_path", "approval_id")
LOG_HEADER = "# " + "\t".join(LOG_FIELDS) + "\taudit_witness\n"


# --- approvals ------------------------------------------------------------------------------


class ApprovalStore:
    """Approvals under `<state_dir>/approvals/`. Status moves pending -> approved|denied, approved -> consumed.

    The files hold what was asked (diff, fields, reasoning); the audit chain decides what holds:
    every request, decision and use is chained first (server/ledger.py) and every answer of this
    store takes its status, requester and decider from those records. An approval file the chain
    does not vouch for reads as `unvouched` and grants nothing; so do in-force values it lacks.
    """

    def __init__(self, state_dir: Path, audit: Any = None) -> None:
        self.root = Path(state_dir) / "approvals"
        self._lock = self.root / ".lock"
        self._in_force = self.root / "protected_in_force.json"
        audit_path = Path(state_dir) / "audit.jsonl"
        self.ledger = ChainLedger(audit_path)
        self._writer = ChainWriter(audit_path, audit)

    def _path(self, approval_id: str) -> Path:
        if not isinstance(approval_id, str) or not APPROVAL_ID.match(approval_id):
            raise InvalidInput(f"{approval_id!r} is not an approval id", "approval ids look like apr-0123456789ab (see `mlgate approvals list`)", rule_id="input.schema")
        return self.root / f"{approval_id}.json"

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The file as stored, or None when it is not an approval record at all."""
        try:
            record = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return record if is_approval_file(record) and record["id"] == path.stem else None

    def _save(self, record: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        stored = {k: v for k, v in record.items() if k != "vouch_problem"}
        write_atomic(self._path(record["id"]), json.dumps(stored, sort_keys=True, indent=2).encode())

    def stored(self, approval_id: str) -> dict[str, Any] | None:
        """The file exactly as stored (None if missing or malformed): for reports, never for decisions."""
        path = self._path(approval_id)
        return self._read(path) if path.is_file() else None

    def get(self, approval_id: str) -> dict[str, Any]:
        """The approval as the chain vouches for it. Raises InvalidInput for a malformed id,
        NotFound for an unknown one."""
        record = self.stored(approval_id)
        if record is None:
            raise NotFound(f"no approval {approval_id}", "list approvals with `mlgate approvals list`", rule_id="approval.not_found")
        return vouched(record, self.ledger)

    def find(self, approval_id: str) -> dict[str, Any] | None:
        try:
            return self.get(approval_id)
        except NotFound:
            return None

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        found = (self._read(p) for p in self.root.glob("apr-*.json") if APPROVAL_ID.match(p.stem))
        records = [vouched(r, self.ledger) for r in found if r is not None]
        return sorted((r for r in records if status in (None, r["status"])), key=lambda r: (str(r["created_at"]), r["id"]))

    def live_for(self, change_hash: str) -> dict[str, Any] | None:
        """The newest vouched approval for this exact change that is not yet consumed."""
        live = [r for r in self.list() if r["change_hash"] == change_hash and r["status"] not in ("consumed", UNVOUCHED)]
        return live[-1] if live else None

    def request(self, *, change_hash: str, target: str, diff: list, fields: list, requester: Principal, reasoning: Any, now: str, kind: str = "config_change") -> tuple[dict[str, Any], bool]:
        """The live approval for `change_hash`, or a new pending one. Returns (record, created).
        `kind` says what is approved: a protected config change, or a promotion (to champion).
        Raises InvalidInput for a malformed hash, IntegrityError when the chain cannot record."""
        if not CHANGE_HASH.match(change_hash):
            raise InvalidInput("malformed change hash", "report to the operator", rule_id="approval.change_hash")
        with locked(self._lock):
            existing = self.live_for(change_hash)
            if existing is not None:
                return existing, False
            record = {
                "id": f"apr-{secrets.token_hex(6)}", "status": "pending", "kind": kind, "change_hash": change_hash,
                "target": target, "diff": diff, "protected_fields": fields,
                "requested_by": {"name": requester.name, "role": requester.role}, "reasoning": reasoning, "created_at": now,
            }  # fmt: skip
            self._writer.append({
                "kind": "approval_requested", "approval_id": record["id"], "change_hash": change_hash, "approval_kind": kind,
                "described_sha256": described_sha256(record), **actor(requester),
            })  # fmt: skip
            self._save(record)
            return record, True

    def decide(self, approval_id: str, *, approve: bool, approver: Principal, note: str | None, now: str) -> dict[str, Any]:
        """pending -> approved|denied by a human or operator holding a credential the chain vouches
        for. Raises PolicyDenied otherwise, IntegrityError when the chain cannot record."""
        check_approver(approver, self.ledger)
        with locked(self._lock):
            record = self.get(approval_id)
            if record["status"] != "pending":
                raise PolicyDenied(f"approval {approval_id} is {record['status']}; decisions are final", "propose the change again to get a new approval", rule_id="approval.is_pending")
            decision = "approve" if approve else "deny"
            chained = self._writer.append({"kind": "approval_decided", "approval_id": approval_id, "change_hash": record["change_hash"], "decision": decision, **actor(approver)})
            record.update(status="approved" if approve else "denied", decided_by=approver.name, decided_role=approver.role, decided_at=chained.get("time", now), credential=approver.credential, note=note)
            self._save(record)
            return record

    def consume(self, approval_id: str, change_hash: str, *, now: str) -> dict[str, Any]:
        """approved -> consumed, once, for exactly `change_hash`. Raises PolicyDenied otherwise."""
        with locked(self._lock):
            record = self.get(approval_id)
            if record["status"] != "approved" or record["change_hash"] != change_hash:
                raise _unusable(record)
            self._writer.append({"kind": "approval_consumed", "approval_id": approval_id, "change_hash": change_hash})
            record.update(status="consumed", consumed_at=now)
            self._save(record)
            return record

    def repair(self, view: Mapping[str, Any]) -> None:
        """Rewrite an approval's file from its chain view (`get`): a decision or use the chain
        recorded whose file rewrite a crash cut short (server/recovery.py)."""
        with locked(self._lock):
            current, stored = self.get(view["id"]), self.stored(view["id"]) or {}
            if current["status"] == view["status"] and stored.get("status") != current["status"]:
                consumed = self.ledger.approval(view["id"]).consumed if current["status"] == "consumed" else None
                self._save({**current, **({"consumed_at": consumed.get("time")} if consumed else {})})

    def in_force(self) -> dict[str, str]:
        """{protected path: canonical value} of the config the server last wrote, as the audit chain
        recorded it ({} if never). The file is a copy for people; editing it grants nothing."""
        return self.ledger.in_force() or {}

    def stored_in_force(self) -> dict[str, str] | None:
        """protected_in_force.json as stored (None if missing or malformed): for reports only."""
        try:
            loaded = json.loads(self._in_force.read_bytes())
        except (OSError, ValueError):
            return None
        return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else None

    def set_in_force(self, values: Mapping[str, str]) -> None:
        """Records the protected values now in force (chain first, then the file). Raises
        IntegrityError when the chain cannot record."""
        self.root.mkdir(parents=True, exist_ok=True)
        values = {str(k): str(v) for k, v in values.items()}
        with locked(self._lock):
            if self.ledger.in_force() != values:
                self._writer.append({"kind": IN_FORCE_KIND, "values": values})
            write_atomic(self._in_force, json.dumps(values, sort_keys=True, indent=2).encode())


# --- the overrides log ----------------------------------------------------------------------


def _cell(value: str) -> str:
    """One tab-separated cell: control characters (tabs, newlines) cannot forge extra cells or lines."""
    return "".join(ch if ch.isprintable() else "?" for ch in value)


class OverridesLog:
    """Append-only `logs/protected_overrides.log` in the workspace. Written by mlgate, read by people.

    Each append chains an `overrides_logged` record listing the SHA-256 of every new line's text,
    then writes the lines, each ending with that record's witness: `mlgate audit verify` reports a
    line edited, removed or added by hand (server/audit/overrides.py)."""

    def __init__(self, workspace: Path, audit_path: Path | str, audit: Any = None, relpath: str = OVERRIDES_LOG) -> None:
        self.workspace = Path(workspace)
        self.relpath = relpath
        self.path = self.workspace / relpath
        self._writer = ChainWriter(audit_path, audit)
        # one writer at a time (replicas, a restoring server): a restore never sees a record
        # whose lines another process is about to write
        self._lock = Path(audit_path).parent / "overrides.lock"

    def append(self, entries: list[Mapping[str, Any]]) -> int:
        """One line per entry (timestamp, field, old, new, approver, config_path, approval_id, then
        the audit witness); old/new as canonical JSON. Raises IntegrityError if the log path is a
        symlink (nothing is chained then) or the chain cannot record (nothing is written)."""
        texts = ["\t".join(_cell(str(e[k])) for k in LOG_FIELDS) for e in entries]
        with locked(self._lock):
            fd = self._open()
            try:
                # chained first: a line is never in the log without the record that vouches for it
                chained = self._writer.append(logged_record(texts, (str(e["approval_id"]) for e in entries), self.relpath))
                witness = f"{chained['seq']}:{chained['hash']}"  # as server/audit/witness.py writes one
                _write_lines(fd, [f"{text}\t{witness}" for text in texts])
            finally:
                os.close(fd)
        return len(entries)

    def restore(self) -> list[str]:
        """Append the lines chained records vouch for and the log lacks (a kill between the record
        and the write, or lines deleted by hand), with their original witnesses. Returns them."""
        with locked(self._lock):
            lines, unreadable = read_log(self.path)
            missing = [] if unreadable is not None else missing_lines(lines, chained_records(self._writer.path))
            if missing:
                fd = self._open()
                try:
                    _write_lines(fd, missing)
                finally:
                    os.close(fd)
        return missing

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise IntegrityError(f"{self.relpath} cannot be opened for appending ({exc.strerror})", "restore the log from git; it must be a regular file") from None


def _write_lines(fd: int, lines: list[str]) -> None:
    prefix = LOG_HEADER if os.fstat(fd).st_size == 0 else ""
    os.write(fd, (prefix + "".join(f"{line}\n" for line in lines)).encode())
    os.fsync(fd)


# --- experiment.yaml and reasoning.yaml -----------------------------------------------------


def _unreadable(relpath: str, exc: OSError) -> IntegrityError:
    """A governed config that is a link, FIFO, directory or otherwise unreadable."""
    return IntegrityError(f"{relpath} cannot be read ({exc.strerror})", f"restore {relpath} from git as a regular file", rule_id="integrity.config_path")


class ConfigFiles:
    """The workspace's config files, by fixed relative path only; symlinks are refused."""

    def __init__(self, workspace: Path, lock_path: Path, allowed: tuple[str, ...] = ("configs/experiment.yaml", "configs/reasoning.yaml")) -> None:
        self.workspace = Path(workspace).resolve()
        self._lock = lock_path
        self._allowed = allowed

    def _path(self, relpath: str) -> Path:
        if relpath not in self._allowed:
            raise InvalidInput(f"{relpath!r} is not a governed config file", "use configs/experiment.yaml or configs/reasoning.yaml", rule_id="input.path")
        path = self.workspace / relpath
        if path.parent.resolve() != self.workspace / Path(relpath).parent or path.is_symlink():
            raise IntegrityError(f"{relpath} or its directory is a symlink", f"restore {relpath} from git as a regular file", rule_id="integrity.config_path")
        return path

    def read(self, relpath: str, max_bytes: int) -> bytes:
        """The file's bytes (at most max_bytes + 1, so an oversize file is still refused by size).
        Raises NotFound if missing, IntegrityError for symlinks."""
        path = self._path(relpath)
        try:
            # Never a blocking open: a FIFO put here would freeze the server until someone wrote to it.
            with open_regular(path) as fd, open(fd, "rb", closefd=False) as handle:
                return handle.read(max_bytes + 1)
        except FileNotFoundError:
            raise NotFound(f"{relpath} does not exist", f"restore {relpath} from git", rule_id="config.missing") from None
        except OSError as exc:
            raise _unreadable(relpath, exc) from None

    def read_document(self, relpath: str, limits: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """(mapping, SHA-256 of the bytes read), loaded with the hardened loader.
        Raises InvalidInput (input.document), NotFound, IntegrityError."""
        data = self.read(relpath, int(limits["max_bytes"]))
        try:
            document = safe_yaml.load_document(data, limits, name=relpath)
        except InvalidInput as exc:
            raise InvalidInput(f"the working-tree {exc.reason}", f"restore it (git checkout -- {relpath}), then try again", rule_id=exc.rule_id) from None
        return document, hashlib.sha256(data).hexdigest()

    @staticmethod
    def parse(text: str, limits: Mapping[str, Any], name: str) -> dict[str, Any]:
        """A client-supplied YAML/JSON mapping, hardened (see server/safe_yaml.py)."""
        return safe_yaml.load_document(text, limits, name=name)

    @staticmethod
    def check(value: Any, limits: Mapping[str, Any], name: str) -> None:
        safe_yaml.check_value(value, limits, name=name)

    @staticmethod
    def render(document: Mapping[str, Any], header: str = "") -> str:
        return safe_yaml.dump_document(document, header=header)

    def render_over(self, relpath: str, document: Mapping[str, Any], limits: Mapping[str, Any], header: str = "") -> str:
        """`document` as YAML keeping the comments of the file now at `relpath` (server/roundtrip_yaml.py)."""
        try:
            original = self.read(relpath, int(limits["max_bytes"]))
        except NotFound:
            original = None
        return roundtrip_yaml.render_over(original, document, limits, header=header)

    def sha256(self, relpath: str) -> str | None:
        """SHA-256 of the file, None when it does not exist. One non-blocking open, as `read` does:
        this runs under the configs lock, and a FIFO swapped in between an is_file() and a read
        would hold the lock, and every proposal, until someone wrote to it. Raises IntegrityError
        for a link, FIFO, directory or unreadable file."""
        path = self._path(relpath)
        try:
            with open_regular(path) as fd, open(fd, "rb", closefd=False) as handle:
                return hashlib.file_digest(handle, "sha256").hexdigest()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unreadable(relpath, exc) from None

    def write(self, files: Mapping[str, str], *, expected: Mapping[str, str | None], before_commit: Callable[[], None] = lambda: None) -> None:
        """Replace `files` atomically each, only if every `expected` path still has that SHA-256.

        `before_commit` runs under the lock after the check and before any rename (e.g. consume
        an approval, append the overrides log); if it raises, nothing is renamed.
        Raises IntegrityError when a file changed since it was read.
        """
        with locked(self._lock):
            for relpath, digest in expected.items():
                if self.sha256(relpath) != digest:
                    raise IntegrityError(f"{relpath} changed while the proposal was being decided", "call propose_config_change again", rule_id="integrity.config_changed")
            temps = {self._path(rel): write_temp(self._path(rel), text.encode()) for rel, text in files.items()}
            try:
                before_commit()
            except BaseException:
                for temp in temps.values():
                    temp.unlink(missing_ok=True)
                raise
            for target, temp in temps.items():
                os.replace(temp, target)
            for directory in {t.parent for t in temps}:
                fsync_dir(directory)


def _unusable(record: Mapping[str, Any]) -> PolicyDenied:
    """An approval used up between the decision and its use (two calls at once), in the words of
    what it approved: a promotion or a protected config change."""
    status = f"approval {record['id']} is {record['status']} and cannot be used"
    if record.get("kind") == "promotion":
        return PolicyDenied(f"{status} for this promotion (another call used it first)", "check `mlgate models list`: the promotion may be done; otherwise promote again to request a new approval", rule_id="promotion.human_approval")
    return PolicyDenied(f"{status} for this change", "propose the change again", rule_id="config.protected_fields")
