"""`mlgate standards set`: the operator names the label, positive class(es), time column, PII and
protected columns of a real dataset. One commit on the protected ref changes
configs/project_standards.yaml AND the protected values of configs/experiment.yaml, so the pair
stays consistent; the YAML keeps its comments (ruamel.yaml round trip).

The commit is built with plumbing in a temporary index (`read-tree`, `update-index`,
`commit-tree`, then `update-ref` with the expected old head), so it lands on the protected ref
whatever branch the working tree has checked out. Before anything is written the same checks the
workspace pre-commit hook runs are applied to the new files (schema, protected fields); mlgate's
own git calls never run workspace hooks, so no hook bypass exists for anyone else to use.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from policies.column_names import name_problem
from policies.provenance import STANDARDS_PATH, branch_problem, protected_deviations
from server.approvals import ApprovalStore
from server.git import GitRepo
from server.roundtrip_yaml import showing
from server.safe_yaml import load_document
from server.settings import Settings, policy_limits
from tools.errors import GitRefused, InvalidInput
from tools.experiment_schema import EXPERIMENT_PATH, validate_experiment

COLUMN = re.compile(r"^[^\x00-\x1f\x7f]{1,200}\Z")
# An integer only in its canonical form: "0777" or "-0" stay text (a code with a leading zero is
# compared as text with the label's values, and 777 would never equal "0777").
INTEGER = re.compile(r"^(0|-?[1-9][0-9]{0,17})\Z")


@dataclass(frozen=True)
class StandardsChoice:
    """What the operator chose; None/empty leaves the current value."""

    target: str | None = None
    positive_class: tuple[int | str, ...] = ()
    time_column: str | None = None
    pii: tuple[str, ...] | None = None
    protected: tuple[str, ...] | None = None

    def is_empty(self) -> bool:
        return self.target is None and not self.positive_class and self.time_column is None and self.pii is None and self.protected is None


@dataclass(frozen=True)
class Proposal:
    """The new file contents and what changed (field: old -> new)."""

    files: dict[str, bytes]
    changes: list[str] = field(default_factory=list)


def label_value(text: str) -> int | str:
    """A positive-class value as typed: an integer when it is one ("1"), else the text."""
    return int(text) if INTEGER.match(text) else text


def check_choice(choice: StandardsChoice) -> StandardsChoice:
    """Raises InvalidInput for an empty choice, a bad column name or a target listed as PII/protected."""
    if choice.is_empty():
        raise InvalidInput("nothing to set", "give at least one of --target, --positive-class, --time-column, --pii, --protected", rule_id="standards.set")
    _check_columns([choice.target, choice.time_column, *(choice.pii or ()), *(choice.protected or ())])
    bad = [v for v in map(str, choice.positive_class) if not COLUMN.match(v)]
    if bad:
        raise InvalidInput(f"positive-class value {bad[0][:60]!r} is not allowed", "use 1-200 printable characters", rule_id="standards.set")
    if choice.target is not None and choice.target in {*(choice.pii or ()), *(choice.protected or ()), choice.time_column}:
        raise InvalidInput(f"the target {choice.target!r} is also listed as PII, protected or the time column", "the label is none of those; list each column once", rule_id="standards.set")
    if len(set(map(str, choice.positive_class))) != len(choice.positive_class):
        raise InvalidInput("positive-class values repeat", "list each positive value once", rule_id="standards.set")
    return choice


def _check_columns(names: list[str | None]) -> None:
    """Column names follow the import's rule (policies/column_names.py): any name a dataset can have."""
    for name in (n for n in names if n is not None):
        problem = name_problem(name)
        if problem:
            shown = json.dumps(name[:60])  # escaped: the name may hold what it must not show
            raise InvalidInput(f"column name {shown} is not allowed: {problem}", "name the column exactly as the dataset spells it "
                               "(`mlgate data list` and load_dataset show the columns)", rule_id="standards.set")  # fmt: skip


# --- editing the two documents ---------------------------------------------------------------


def _yaml() -> YAML:
    yaml = showing(YAML(typ="rt"))  # zero-width and bidi characters written as escapes a reviewer sees
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def _load(raw: bytes, name: str) -> Any:
    load_document(raw, policy_limits()["documents"], name=name)  # the hardened checks first
    return _yaml().load(raw.decode("utf-8"))


def _dump(document: Any) -> bytes:
    out = io.StringIO()
    _yaml().dump(document, out)
    return out.getvalue().encode("utf-8")


def _as_seq(old: Any, values: list[Any]) -> CommentedSeq:
    """`values` as a sequence that keeps the old one's comments and style: ruamel hangs the
    comment block that follows a list on its last item, which a plain replacement would drop."""
    new = CommentedSeq(values)
    if isinstance(old, CommentedSeq):
        new.ca.comment = old.ca.comment
        trailing = old.ca.items.get(len(old) - 1)
        if trailing and values:
            new.ca.items[len(values) - 1] = trailing
        if old.fa.flow_style():
            new.fa.set_flow_style()
    return new


def _set(mapping: Any, key: str, value: Any, where: str, changes: list[str]) -> None:
    old = mapping.get(key)
    if old != value:
        changes.append(f"{where}: {_plain(old)!r} -> {_plain(value)!r}")
        mapping[key] = _as_seq(old, value) if isinstance(value, list) else value


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _positive(choice: StandardsChoice) -> int | str | list[int | str]:
    return choice.positive_class[0] if len(choice.positive_class) == 1 else list(choice.positive_class)


def edit_standards(document: Any, choice: StandardsChoice, changes: list[str]) -> None:
    label, protected = document.setdefault("label", {}), document.setdefault("protected_fields", {})
    if choice.target is not None:
        _set(label, "target", choice.target, "standards label.target", changes)
        _set(protected, "data.target", choice.target, "standards protected_fields.data.target", changes)
    if choice.positive_class:
        _set(label, "positive_class", _positive(choice), "standards label.positive_class", changes)
        _set(protected, "data.positive_class", _positive(choice), "standards protected_fields.data.positive_class", changes)
    if choice.time_column is not None:
        _set(document, "time_column", choice.time_column, "standards time_column", changes)
    for key, value in (("pii_columns", choice.pii), ("protected_attributes", choice.protected)):
        if value is not None:
            _set(document, key, list(value), f"standards {key}", changes)


def edit_experiment(document: Any, choice: StandardsChoice, changes: list[str]) -> None:
    data = document.setdefault("data", {})
    if choice.target is not None:
        _set(data, "target", choice.target, "experiment data.target", changes)
    if choice.positive_class:
        _set(data, "positive_class", _positive(choice), "experiment data.positive_class", changes)


def propose(standards_raw: bytes, experiment_raw: bytes, choice: StandardsChoice, in_force: dict[str, str]) -> Proposal:
    """The new standards and experiment.yaml for `choice`. Raises InvalidInput when the result
    fails the checks the pre-commit hook applies (schema, protected fields)."""
    changes: list[str] = []
    standards, experiment = _load(standards_raw, STANDARDS_PATH), _load(experiment_raw, EXPERIMENT_PATH)
    edit_standards(standards, check_choice(choice), changes)
    edit_experiment(experiment, choice, changes)
    files = {STANDARDS_PATH: _dump(standards), EXPERIMENT_PATH: _dump(experiment)}
    new_standards = load_document(files[STANDARDS_PATH], policy_limits()["documents"], name=STANDARDS_PATH)
    new_experiment = load_document(files[EXPERIMENT_PATH], policy_limits()["documents"], name=EXPERIMENT_PATH)
    problems = [f"{EXPERIMENT_PATH}: {p}" for p in validate_experiment(new_experiment)[1]]
    problems += [f"protected field {d['path']} would be {d['value']}, the standards require {d['required']}" for d in protected_deviations(new_experiment, new_standards.get("protected_fields") or {}, in_force)]
    if problems:
        raise InvalidInput("the new standards would not pass the workspace checks: " + "; ".join(problems), "fix the values given; nothing was written", rule_id="standards.set")
    return Proposal(files, changes)


# --- committing on the protected ref ----------------------------------------------------------


def _require_clean_paths(repo: GitRepo, ref: str, paths: Sequence[str]) -> None:
    """When `ref` is checked out, its copies of `paths` in the index and working tree must be the
    committed ones (they are about to be replaced). Raises GitRefused otherwise."""
    if repo.current_branch() != ref:
        return
    dirty = repo.text("status", "--porcelain", "--", *paths)
    if dirty:
        raise GitRefused(f"{', '.join(paths)} have uncommitted changes on {ref}", "commit or discard them, then run the command again; nothing was written", rule_id="standards.set")


def commit_files(repo: GitRepo, ref: str, files: dict[str, bytes], message: str) -> str:
    """One commit on `ref` replacing `files`; the checked-out copy follows when `ref` is checked
    out. Returns the new commit. Raises GitRefused when `ref` moved meanwhile."""
    old = repo.branch_head(ref)
    if old is None:
        raise GitRefused(f"branch {ref} does not exist", "run mlgate init first", rule_id="standards.set")
    _require_clean_paths(repo, ref, list(files))
    with tempfile.TemporaryDirectory(prefix="mlgate-standards-") as tmp:
        staging = GitRepo(repo.path, env={"GIT_INDEX_FILE": str(Path(tmp) / "index")})
        staging.run("read-tree", old)
        for path, data in files.items():
            (Path(tmp) / "blob").write_bytes(data)
            blob = staging.text("hash-object", "-w", "--", str(Path(tmp) / "blob"))
            staging.run("update-index", "--cacheinfo", f"100644,{blob},{path}")
        new = staging.text("commit-tree", staging.text("write-tree"), "-p", old, "-m", message)
    repo.run("update-ref", "-m", "mlgate standards set", f"refs/heads/{ref}", new, old)
    if repo.current_branch() == ref:
        repo.run("read-tree", "-m", "-u", old, new)  # index and files follow; other local edits stay
    return new


def plan(settings: Settings, choice: StandardsChoice) -> Proposal:
    """What `set_standards` would commit. Raises InvalidInput / GitRefused."""
    repo, ref = GitRepo(settings.workspace), settings.protected_ref
    if branch_problem(ref) is None:
        raise GitRefused(f"protected_ref {ref!r} is a branch agents may push", "set protected_ref back to main in the state dir's server.yaml", rule_id="standards.set")
    standards, experiment = repo.show(ref, STANDARDS_PATH), repo.show(ref, EXPERIMENT_PATH)
    if standards is None or experiment is None:
        raise InvalidInput(f"{STANDARDS_PATH} or {EXPERIMENT_PATH} is not committed on {ref}", "restore them from the commit mlgate init made", rule_id="standards.set")
    return propose(standards, experiment, choice, ApprovalStore(settings.state_dir).in_force())
