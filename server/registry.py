"""The model registry adapter: MLflow registered models, versions and aliases, plus the alias
history mlgate keeps so that a rollback knows where an alias pointed before.

MLflow stores one pointer per alias and forgets the previous one. Every move mlgate makes is
appended to `<state_dir>/registry/aliases.json` ({model: {alias: [event, ...]}}, written atomically
under a lock); the alias's stack of versions is derived from those events (`alias_stack`). A
rollback refuses when MLflow's pointer and the history disagree: the alias was moved outside mlgate.
Calls block; async callers run them in a worker thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.lifecycle import STAGE_TAG, stage_of
from policies.promotion import MODEL_NAME
from server.files import locked, write_atomic
from server.mlflow_import import mlflow_module
from server.tracking import RUN_ID
from tools.errors import InvalidInput, NotFound, PolicyDenied

MODEL_DIR = "model"
LIFECYCLE_KEY = "lifecycle"  # history list of archive events, beside the aliases' lists


def check_model_name(name: str) -> str:
    """Raises InvalidInput unless `name` is a registry name mlgate uses (letters, digits, _ . -)."""
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise InvalidInput(f"{str(name)[:60]!r} is not a model name", "model names are letters, digits, '_', '.', '-' (see `mlgate models list`)", rule_id="input.schema")
    return name


def alias_stack(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """Versions an alias has pointed at, oldest first, after replaying promote/rollback events."""
    stack: list[str] = []
    for event in events:
        if event.get("action") == "promote" and (not stack or stack[-1] != event.get("version")):
            stack.append(str(event["version"]))
        elif event.get("action") == "rollback" and stack:
            stack.pop()
    return stack


ANY_VERSION = object()  # point() without a version the move must replace


def _moved(name: str, alias: str, previous: str | None, replacing: Any) -> PolicyDenied:
    def shown(version: Any) -> str:
        return "no version" if version is None else f"version {version}"

    return PolicyDenied(
        f"{name}@{alias} stands at {shown(previous)}, not {shown(replacing)} as when this promotion's gates and approval were checked: "
        "another promotion or rollback moved it in between; nothing was changed",
        "call promote again: the gates are re-checked against the version now in place (a champion needs an approval for replacing it)",
        rule_id="promotion.alias_moved",
    )


class ModelRegistry:
    def __init__(self, tracking: Any, root: Path, witness: Callable[[], str] | None = None) -> None:
        self.tracking = tracking
        # each alias event records the audit chain head (server/audit/witness.py)
        self._witness = witness
        self.root = Path(root)
        self._history = self.root / "aliases.json"
        self._lock = self.root / ".lock"

    @property
    def _client(self) -> Any:
        return self.tracking.client

    # --- reading ------------------------------------------------------------------------------

    def version_for_run(self, name: str, run_id: str) -> str | None:
        """The version of model `name` registered from run `run_id` (the oldest if several)."""
        if not RUN_ID.match(run_id):
            return None
        found = self._client.search_model_versions(f"name='{check_model_name(name)}' and run_id='{run_id}'")
        return str(min(int(v.version) for v in found)) if found else None

    def version(self, name: str, version: str) -> dict[str, Any]:
        """{version, run_id, source, tags, aliases}. Raises NotFound."""
        errors = mlflow_module("mlflow.exceptions")
        try:
            found = self._client.get_model_version(check_model_name(name), str(version))
        except errors.MlflowException:
            raise NotFound(f"no version {version} of model {name}", "list models with `mlgate models list`", rule_id="registry.not_found") from None
        return {"version": str(found.version), "run_id": found.run_id, "source": found.source, "tags": dict(found.tags), "aliases": list(found.aliases)}

    def stage(self, name: str, version: str | None) -> str | None:
        """The lifecycle stage of a version (policies/lifecycle.py), None for no version."""
        if version is None:
            return None
        found = self.version(name, version)
        return stage_of(found["tags"], found["aliases"])

    def recorded_stage(self, name: str, version: str | None) -> str | None:
        """The stage mlgate's (witnessed) history last gave a version, None when it never did. The
        tag is what MLflow shows; this is what a tag changed outside mlgate is checked against."""
        moves = [(e.get("seq", -1), n, e) for events in self._load().get(name, {}).values() for n, e in enumerate(events) if isinstance(e, dict)]
        recorded = None
        for _, _, event in sorted(moves, key=lambda m: (m[0], m[1])):
            for change in event.get("stages") or []:
                if isinstance(change, dict) and change.get("version") == version:
                    recorded = change.get("to")
        return recorded

    def alias_version(self, name: str, alias: str) -> str | None:
        return self.tracking.alias_version(check_model_name(name), alias)

    def has_model_artifact(self, run_id: str) -> bool:
        errors = mlflow_module("mlflow.exceptions")
        try:
            return bool(self._client.list_artifacts(run_id, MODEL_DIR))
        except (errors.MlflowException, OSError):
            return False

    def events(self, name: str, alias: str) -> list[dict[str, Any]]:
        return list(self._load().get(name, {}).get(alias, []))

    def stack(self, name: str, alias: str) -> list[str]:
        return alias_stack(self.events(name, alias))

    def _load(self) -> dict[str, Any]:
        if not self._history.is_file():
            return {}
        loaded = json.loads(self._history.read_bytes())
        return loaded if isinstance(loaded, dict) else {}

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model: name, aliases {alias: version} and versions (with their runs)."""
        return sorted((self._listed(model) for model in self._client.search_registered_models(max_results=1000)), key=lambda m: m["name"])

    def model(self, name: str) -> dict[str, Any] | None:
        """The model `name` as list_models lists it; None when it is not registered."""
        found = self._client.search_registered_models(f"name = '{check_model_name(name)}'", max_results=1)
        return self._listed(found[0]) if found else None

    def _listed(self, model: Any) -> dict[str, Any]:
        versions = self._versions_of(model.name)
        rows = sorted(({"version": str(v.version), "run_id": v.run_id, "promoted": v.tags.get("promoted") == "true", "stage": stage_of(v.tags, v.aliases)} for v in versions), key=lambda r: int(r["version"]))
        return {"name": model.name, "aliases": {a: str(v) for a, v in sorted(model.aliases.items())}, "versions": rows}

    def _versions_of(self, name: str) -> list[Any]:
        """Every version of the model `name`, whatever its name holds: a shared store lists other
        projects' models, and a quote in a name must not break MLflow's filter (it takes either
        quote; a name holding both is matched here, from every version in the store)."""
        if "'" not in name:
            return list(self._client.search_model_versions(f"name='{name}'"))
        if '"' not in name:
            return list(self._client.search_model_versions(f'name="{name}"'))
        return [v for v in self._client.search_model_versions() if v.name == name]

    # --- writing ------------------------------------------------------------------------------

    def register(self, name: str, run_id: str, run_artifact_uri: str, tags: Mapping[str, Any]) -> str:
        """A new version of `name` from the run's model/ artifact; returns the version."""
        source = f"{run_artifact_uri.rstrip('/')}/{MODEL_DIR}"
        return self.tracking.register_model_version(check_model_name(name), source, run_id, tags)

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, Any]) -> list[str]:
        return self.tracking.set_model_version_tags(check_model_name(name), str(version), tags)

    def standing(self, name: str, alias: str) -> str | None:
        """The version `alias` points at by mlgate's witnessed history; MLflow's pointer only for an
        alias whose history is not kept yet. MLflow's pointer may have been moved or deleted outside
        mlgate (the MLflow UI, a shell on the store), which must not move a gate's bar."""
        return (self.stack(name, alias) or [self.alias_version(name, alias)])[-1]

    def point(self, name: str, alias: str, version: str, event: Mapping[str, Any], replacing: str | None | object = ANY_VERSION,
              claim: Callable[[], object] = lambda: None) -> list[dict[str, Any]]:
        """Point `alias` at `version`, give it the alias's stage (a champion it replaces is archived)
        and record the move (unless the history already ends there). Returns the stage changes.
        Under the registry's lock, first: refuses (PolicyDenied, nothing changed, `claim` not called)
        when the version the alias stands at is not `replacing`, the one the caller's gates and
        approval were about; then calls `claim` (an approval consumed only by the move it approved)."""
        with locked(self._lock):
            # The champion replaced is the one the history recorded: MLflow's pointer may have been
            # moved outside mlgate (onto this very version), which would leave the real one staged.
            previous = self.standing(name, alias)
            if replacing is not ANY_VERSION and previous != replacing:
                raise _moved(name, alias, previous, replacing)
            claim()
            moves = [(str(version), alias)] + ([(previous, "archived")] if alias == "champion" and previous not in (None, str(version)) else [])
            before = self._stages(name, moves)
            self.tracking.set_alias(check_model_name(name), alias, str(version))
            changes = self._restage(name, moves, before)
            if self.stack(name, alias)[-1:] != [str(version)]:
                self._append(name, alias, {**event, "action": "promote", "version": str(version), "stages": changes})
            return changes

    def roll_back(self, name: str, alias: str, event: Mapping[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
        """Point `alias` at the version before the current one. Returns (from, to, stage changes):
        a champion rolled back from is archived, the one restored is champion again. Raises
        NotFound when there is none or the alias moved outside mlgate (re-checked under the lock)."""
        with locked(self._lock):
            stack, current = self.stack(name, alias), self.alias_version(name, alias)
            if len(stack) < 2 or stack[-1] != current:
                raise NotFound(f"{name}@{alias} has no previous version in mlgate's history", "promote a run to the alias instead", rule_id="promotion.rollback_available")
            moves = [(stack[-1], "archived"), (stack[-2], "champion")] if alias == "champion" else [(stack[-2], "candidate")]
            before = self._stages(name, moves)
            self.tracking.set_alias(name, alias, stack[-2])
            changes = self._restage(name, moves, before)
            self._append(name, alias, {**event, "action": "rollback", "version": stack[-2], "from_version": stack[-1], "stages": changes})
            return stack[-1], stack[-2], changes

    def archive(self, name: str, version: str, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Archive a version no alias points at (re-checked under the lock); recorded in the
        history's `lifecycle` list. Raises NotFound when an alias holds it now."""
        with locked(self._lock):
            aliases = self.version(name, version)["aliases"]
            if aliases:
                raise NotFound(f"version {version} of {name} is what {', '.join(sorted(aliases))} points at", "move the alias first, then archive", rule_id="lifecycle.archive_unaliased")
            moves = [(str(version), "archived")]
            changes = self._restage(name, moves, self._stages(name, moves))
            self._append(name, LIFECYCLE_KEY, {**event, "action": "archive", "version": str(version), "stages": changes})
            return changes

    def restore_alias(self, name: str, alias: str) -> dict[str, Any] | None:
        """Point `alias` back where the history says (remove it when the history says nowhere) if
        MLflow's pointer differs; checked under the lock, so a move in progress is never undone.
        Used on start (server/recovery.py). Returns what was restored, None when nothing was."""
        with locked(self._lock):
            current, recorded = self.alias_version(name, alias), (self.stack(name, alias) or [None])[-1]
            if current == recorded:
                return None
            if recorded is None:
                self._client.delete_registered_model_alias(check_model_name(name), alias)
            else:
                self.tracking.set_alias(check_model_name(name), alias, recorded)
            return {"model": name, "alias": alias, "pointed_at": current, "restored_to": recorded}

    def restore_stage(self, name: str, version: str) -> dict[str, Any] | None:
        """Set a version's stage tag back to the stage the history gave it; remove a tag the history
        never gave a version no alias holds (a move cut short). A version with no recorded stage
        that an alias holds (promoted before stages were recorded) is left alone. Under the lock."""
        with locked(self._lock):
            found = self.version(name, version)
            tag, recorded = found["tags"].get(STAGE_TAG), self.recorded_stage(name, version)
            if tag == recorded or (recorded is None and (tag is None or found["aliases"])):
                return None
            if recorded is None:
                self._client.delete_model_version_tag(check_model_name(name), str(version), STAGE_TAG)
            else:
                self.set_version_tags(name, version, {STAGE_TAG: recorded})
            return {"model": name, "version": str(version), "stage_tag": tag, "restored_to": recorded}

    def _stages(self, name: str, moves: Sequence[tuple[str, str]]) -> dict[str, str | None]:
        """Each moving version's recorded stage before the move (None: none recorded yet, as for a
        version just registered)."""
        return {version: self.version(name, version)["tags"].get(STAGE_TAG) for version, _ in moves}

    def _restage(self, name: str, moves: Sequence[tuple[str, str]], before: Mapping[str, str | None]) -> list[dict[str, Any]]:
        """Set each version's stage tag; [{version, from, to}] for those that changed. A candidate
        alias never demotes a champion (rolling the candidate alias back onto it keeps it champion)."""
        changes = []
        for version, target in moves:
            after = before[version] if target == "candidate" and before[version] == "champion" else target
            self.set_version_tags(name, version, {STAGE_TAG: after})
            if after != before[version]:
                changes.append({"version": version, "from": before[version], "to": after})
        return changes

    def _append(self, name: str, alias: str, event: Mapping[str, Any]) -> None:
        history = self._load()
        witness = {"audit_witness": self._witness()} if self._witness is not None else {}
        # seq orders events across the model's lists (recorded_stage replays them in that order)
        seq = 1 + sum(len(events) for events in history.get(name, {}).values() if isinstance(events, list))
        history.setdefault(name, {}).setdefault(alias, []).append({**event, "seq": seq, **witness})
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self._history, json.dumps(history, sort_keys=True, indent=2).encode())
