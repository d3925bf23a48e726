"""The schemas of configs/experiment.yaml (what to run) and configs/reasoning.yaml (why).

Strict: unknown keys are errors (including case variants such as `Data`), values are not
coerced (`"1"` is not 1, `true` is not 1). Each model family has its own hyperparameter model,
chosen by `model.type`; each split strategy its own fields, chosen by `split.strategy`. Which
metrics, model types, strategies and hypothesis categories a project may use is decided by its
standards (policies/config_change.py); the schema lists what mlgate can run at all.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer, model_validator

from policies.column_names import MAX_CHARS, REFUSED_KINDS, name_problem
from training.spec import ModelSpec

EXPERIMENT_PATH = "configs/experiment.yaml"
REASONING_PATH = "configs/reasoning.yaml"

Metric = Literal["roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "brier"]
Outcome = Literal["pending", "confirmed", "neutral", "negative"]
EXCLUDED_NAME_MAX = MAX_CHARS
EXCLUDED_NAME_RULE = (
    "a features.exclude entry is a column's exact name as the dataset spells it (load_dataset lists them; any "
    "Unicode, such as a full-width or zero-width character, written as a \\uXXXX escape if need be), matched "
    f"exactly: 1 to {EXCLUDED_NAME_MAX} characters, no control characters or other characters the import refuses ({REFUSED_KINDS})"
)


def _excluded_name(name: str) -> str:
    """A dataset column's exact name: whatever the import keeps, never normalised, so one entry
    cannot stand for two columns (`ｌoan_status` is not `loan_status`). The import's own column-name
    rule (policies/column_names.py) decides: control characters, bidi controls and the like would
    travel into git diffs and terminals, and no imported column can hold them anyway."""
    problem = name_problem(name)
    if problem == "it is empty":
        raise ValueError(f"{EXCLUDED_NAME_RULE}; this one is empty")
    if problem:
        raise ValueError(f"{EXCLUDED_NAME_RULE}; {problem}: a column so named cannot be named here, so ask the operator to "
                         "drop or rename it at import (mlgate data add)")  # fmt: skip
    return name


ExcludedColumn = Annotated[str, AfterValidator(_excluded_name)]


def _label_name(name: str) -> str:
    """The label column's exact name, under the same rule as any imported column: a dataset whose
    label is `Default (12m)` or `état` can be governed without renaming it."""
    problem = name_problem(name)
    if problem:
        raise ValueError(f"data.target is the label column's exact name as the dataset spells it: 1 to {MAX_CHARS} characters, "
                         f"none of {REFUSED_KINDS}; {problem}")  # fmt: skip
    return name


LabelColumn = Annotated[str, AfterValidator(_label_name)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
PositiveValues = Annotated[list[int | str], Field(min_length=1, max_length=50)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


# --- experiment, data ----------------------------------------------------------------------


class ExperimentSection(Strict):
    name: str = Field(description="Short name of the experiment (letters, digits, . _ -).", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    seed: int = Field(description="Seed for every random source (split, model, bootstrap).", ge=0, le=2**32 - 1)


class DataSection(Strict):
    dataset: str | None = Field(description="Content hash (64 lowercase hex) of a dataset under data/shadow/, or null before one is chosen.", pattern=r"^[0-9a-f]{64}$")
    target: LabelColumn = Field(description="Label column, its exact name in the dataset; fixed by the standards (protected).")
    positive_class: int | str | PositiveValues = Field(
        description="Value of the label that counts as positive, or a list of values any of which counts as positive "
        '(e.g. ["Late", "Charged Off"]); fixed by the standards (protected). 1 and \"1\" differ.'
    )

    @model_validator(mode="after")
    def _distinct_positive_values(self) -> DataSection:
        if isinstance(self.positive_class, list) and len({str(v) for v in self.positive_class}) != len(self.positive_class):
            raise ValueError("positive_class values must not repeat")
        return self


# --- split ----------------------------------------------------------------------------------


class StratifiedKFold(Strict):
    strategy: Literal["stratified_kfold"] = Field(description="Stratified k-fold cross-validation on the training part, plus a held-out test part.")
    n_splits: int = Field(description="Number of folds.", ge=2, le=20)
    test_size: Fraction = Field(description="Fraction of rows held out for the final test (stratified by the label).")


TimeBound = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?$")] | float


def _bound_value(bound: str | float) -> Any:
    return datetime.fromisoformat(bound) if isinstance(bound, str) else bound


class TemporalSplit(Strict):
    strategy: Literal["temporal_split"] = Field(description="Split ordered by the standards' time_column: earlier rows train, later rows validate, the latest test.")
    test_size: Fraction | None = Field(None, description="Fraction of the latest rows held out for test (fractions form).")
    validation_size: Fraction | None = Field(None, description="Fraction of rows just before the test part used for validation (fractions form; default: test_size).")
    train_end: TimeBound | None = Field(None, description="Bounds form: rows with time <= train_end train (YYYY-MM-DD, or a number for an ordinal time column).")
    validation_end: TimeBound | None = Field(None, description="Bounds form: rows after train_end and <= validation_end validate; later rows test.")

    @model_validator(mode="after")
    def _fractions_or_bounds(self) -> TemporalSplit:
        bounds = (self.train_end, self.validation_end)
        if any(b is not None for b in bounds) == (self.test_size is not None) or (None in bounds and any(b is not None for b in bounds)):
            raise ValueError("give either test_size (optionally validation_size) or both train_end and validation_end")
        if self.validation_size is not None and self.test_size is None:
            raise ValueError("validation_size only goes with test_size")
        if self.test_size is not None and self.test_size + (self.validation_size or self.test_size) >= 1.0:
            raise ValueError("test_size + validation_size must leave rows for training")
        if self.train_end is not None and not _ordered(self.train_end, self.validation_end):
            raise ValueError("train_end must be before validation_end (both dates or both numbers)")
        return self

    @model_serializer(mode="wrap")
    def _only_the_chosen_form(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Unset alternatives are left out, so the file names exactly one form (tools/splits.py
        picks the bounds form by the presence of train_end)."""
        return {k: v for k, v in handler(self).items() if v is not None}


def _ordered(first: Any, second: Any) -> bool:
    if isinstance(first, str) != isinstance(second, str):
        return False
    return _bound_value(first) < _bound_value(second)


Split = Annotated[StratifiedKFold | TemporalSplit, Field(discriminator="strategy")]


# --- model families: the training child's own models, so a config accepted here runs there ---

Model = ModelSpec


# --- features, evaluation, whole file -------------------------------------------------------


class FeaturesSection(Strict):
    exclude: list[ExcludedColumn] = Field(
        description="Columns never used as features, each by its exact name as the dataset spells it (any Unicode, matched exactly, "
        f"never normalised; 1-{EXCLUDED_NAME_MAX} characters, no control characters or bidi controls). PII columns are always excluded.",
        max_length=500,
    )
    use_protected_attributes: bool = Field(description="Use the standards' protected attributes as features (protected; needs approval).")


class EvaluationSection(Strict):
    primary_metric: Metric = Field(description="The metric gates and comparisons use (protected).")
    metrics: list[Metric] = Field(description="Every metric reported; must include the primary metric.", min_length=1, max_length=16)
    bootstrap_samples: int = Field(description="Bootstrap resamples for confidence intervals (0: none).", ge=0, le=10000)

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationSection:
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics must not repeat")
        if self.primary_metric not in self.metrics:
            raise ValueError("metrics must include primary_metric")
        return self


class ExperimentConfig(Strict):
    """configs/experiment.yaml."""

    experiment: ExperimentSection = Field(description="Name and seed.")
    data: DataSection = Field(description="Dataset and label.")
    split: Split = Field(description="How rows are split into train/validation/test.")
    model: Model = Field(description="Model family and its hyperparameters.")
    features: FeaturesSection = Field(description="Feature selection.")
    evaluation: EvaluationSection = Field(description="Metrics and confidence intervals.")


# Reasoning is read by people at terminals (`mlgate insights`) and stored in MLflow params: line
# breaks and tabs, but no other control character, bidi override or line separator.
READABLE_TEXT = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]+$"


class ReasoningConfig(Strict):
    """configs/reasoning.yaml: why a change or run is made."""

    hypothesis_category: str = Field(description="One of the standards' allowed.hypothesis_categories, lowercase (e.g. baseline, model_family).", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    change_description: str = Field(description="What changes and how, in a sentence or two (plain text: line breaks, no control characters).", min_length=1, max_length=2000, pattern=READABLE_TEXT)
    expected_effect: str = Field(description="What effect on which metric is expected, and why (plain text: line breaks, no control characters).", min_length=1, max_length=2000, pattern=READABLE_TEXT)
    outcome: Outcome = Field("pending", description="Set by the server from the run it measured (confirmed, neutral or negative); agents leave it out.")
    metric_delta: float | None = Field(None, description="Primary-metric change against the best prior run, set by the server from the run; agents leave it out.")


# --- validation helpers ---------------------------------------------------------------------


def schema_errors(exc: ValidationError, model: type[BaseModel] = ExperimentConfig) -> list[str]:
    """`path: message` per problem, values left out; an unknown key gets a did-you-mean hint (a case
    variant of a field it may hold) or the fields its mapping takes (of the chosen model type or
    split strategy): one line for all unknown keys of one mapping (a switch from xgboost leaves ten
    of them)."""
    described: list[str | tuple[str, ...]] = []
    misplaced: dict[tuple[str, ...], list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        found = _misplaced(error, model)
        if found is None:
            described.append(_describe(error, model))
            continue
        described.append(found[0])  # the group's place: rendered below with all its names
        misplaced.setdefault(found[0], []).append(found[1])
    return list(dict.fromkeys(_misplaced_text(item, misplaced[item]) if isinstance(item, tuple) else item for item in described))


def _describe(error: Any, model: type[BaseModel]) -> str:
    loc = _config_loc(error)
    path = ".".join(loc) or "(root)"
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        return _tag_problem(error, path, model)
    message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own words
    if error["type"] == "extra_forbidden":
        message = "unknown field" + _case_hint(loc, _fields_at(error["loc"], loc, model))
    return f"{path}: {message}"


def _tag_problem(error: Any, path: str, model: type[BaseModel]) -> str:
    """A model or split mapping without its type/strategy, or with one no member has, in config
    words (pydantic's would speak of discriminators and echo the rejected value)."""
    field = str((error.get("ctx") or {}).get("discriminator", "type")).strip("'")
    holder, _ = _holder(error["loc"], model)
    name = str(error["loc"][-1])
    members = _submodels(holder.model_fields[name].annotation) if holder is not None and name in holder.model_fields else []
    tags = ", ".join(t for t in (_discriminator_value(m) for m in members) if t)
    if error["type"] == "union_tag_invalid":
        return f"{path}.{field}: must be one of {tags}"
    return f"{path}: {field} is missing (one of {tags}): a {path} mapping names its {field}, and one given whole in a change replaces the old one"


UNION_LABELS = {"xgboost", "torch_mlp", "logistic_regression", "random_forest", "stratified_kfold", "temporal_split", "int", "str", "float", "bool", "none"}


def _is_union_tag(part: Any) -> bool:
    """Pydantic names union members in error locations; a config path never contains them."""
    return isinstance(part, str) and (part in UNION_LABELS or "[" in part)


def _config_loc(error: Any) -> list[str]:
    return [str(p) for p in error["loc"] if not _is_union_tag(p)]


def _fields_at(raw_loc: tuple[Any, ...], loc: list[str], model: type[BaseModel]) -> list[str]:
    """The fields of the mapping that holds the last part of an error location."""
    holder, _ = _holder(raw_loc, model)
    prefix = "".join(f"{part}." for part in loc[:-1])
    if holder is not None:
        return list(holder.model_fields)
    return [p.removeprefix(prefix) for p in known_paths(model) if p.startswith(prefix) and "." not in p.removeprefix(prefix)]


def _case_hint(loc: list[str], fields: list[str]) -> str:
    """A case variant of the unknown key among the fields; never the rejected name itself."""
    name = loc[-1] if loc else ""
    variant = next((f for f in fields if f.lower() == name.lower() and f != name), None)
    return "" if variant is None else f" (did you mean {'.'.join([*loc[:-1], variant])!r}? keys are case-sensitive)"


def _misplaced(error: Any, model: type[BaseModel]) -> tuple[tuple[str, ...], str] | None:
    """For an unknown key without a case variant among its mapping's fields: ((mapping path, noun,
    the chosen model type or split strategy or the mapping's path, its fields), the key); None for
    any other problem."""
    loc = _config_loc(error)
    if error["type"] != "extra_forbidden" or not loc:
        return None
    _, tag = _holder(error["loc"], model)
    fields = _fields_at(error["loc"], loc, model)
    if not fields or _case_hint(loc, fields):
        return None
    noun = "parameter" if loc[-2:-1] == ["params"] else "field"
    parent = ".".join(loc[:-1])
    return (parent, noun, tag or parent or "the config", ", ".join(fields)), loc[-1]


def _misplaced_text(group: tuple[str, ...], names: list[str]) -> str:
    parent, noun, tag, fields = group
    where = f"{parent}." if parent else ""
    if len(names) == 1:
        return f"{where}{names[0]}: unknown field: {names[0]} is not a {noun} of {tag}; its {noun}s are {fields}"
    return f"{parent or '(root)'}: unknown fields: {', '.join(names)} are not {noun}s of {tag}; its {noun}s are {fields}"


def _holder(raw_loc: tuple[Any, ...], model: type[BaseModel]) -> tuple[type[BaseModel] | None, str | None]:
    """The model that holds the last part of an error location, following union members by the tag
    pydantic puts in the location, and the last such tag; (None, tag) when it cannot be followed."""
    members: list[type[BaseModel]] = [model]
    tag = None
    for part in raw_loc[:-1]:
        chosen = [m for m in members if _discriminator_value(m) == part]
        if chosen:
            members, tag = chosen, str(part)
            continue
        annotations = [m.model_fields[part].annotation for m in members if isinstance(part, str) and part in m.model_fields]
        members = _submodels(annotations[0]) if annotations else []
    return (members[0] if len(members) == 1 else None), tag


def _discriminator_value(model: type[BaseModel]) -> str | None:
    """The tag of a union member: its single-valued Literal field (model.type, split.strategy)."""
    for field in model.model_fields.values():
        if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
            return str(get_args(field.annotation)[0])
    return None


def known_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted field path of `model` (through unions: the union of their fields)."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        for sub in _submodels(field.annotation):
            paths.extend(known_paths(sub, path + "."))
    return sorted(set(paths))


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_submodels(arg))
    return found


def validate_experiment(raw: Any) -> tuple[ExperimentConfig | None, list[str]]:
    """(config, []) when valid, else (None, problems). Validated as JSON (YAML documents loaded by
    server/safe_yaml.py hold JSON types only), so lists fill tuple fields but "1" never fills an int."""
    try:
        return ExperimentConfig.model_validate_json(json.dumps(raw)), []
    except ValidationError as exc:
        return None, schema_errors(exc)
    except (TypeError, ValueError):
        return None, ["(root): not a JSON-compatible document"]
