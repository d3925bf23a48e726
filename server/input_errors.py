"""Schema refusals an agent can act on: which field, what is needed. Rejected values stay out (they
are the caller's data), field names the caller chose are shown only when short and plain, and
pydantic's internals (union member labels, class names) are translated."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from tools.errors import InvalidInput
from tools.secrets_scan import secret_kind_of_value

# How many problems are listed, and which field names are shown as given (schema names are short;
# a bearer token, mlgate_ and 43 characters, is not).
MAX_PROBLEMS = 10
ROOT = ""  # the tool's input model among the models a refusal can name
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,39}")


def name_hash(name: Any) -> str:
    """A client-chosen name the server does not know is hashed, never recorded: it may carry anything."""
    return hashlib.sha256(str(name).encode("utf-8", "replace")).hexdigest()[:16]


def _field_path(loc: tuple[Any, ...], chosen: set[str]) -> str:
    """A field path an agent can act on. A name the caller chose (a key of its arguments) is its own
    text and may be long or hold a credential: one that is not a short plain name is shown hashed."""
    return ".".join(_shown(part, chosen) for part in loc) or "(root)"


def _shown(part: Any, chosen: set[str]) -> str:
    if part not in chosen or (PLAIN_NAME.fullmatch(part) and not secret_kind_of_value(part)):
        return str(part)
    return f"field #{name_hash(part)}"


def _keys(arguments: Any) -> set[str]:
    """Every mapping key anywhere in the arguments: the names the caller chose."""
    keys: set[str] = set()
    pending = [arguments]
    while pending:
        item = pending.pop()
        if isinstance(item, Mapping):
            keys.update(key for key in item if isinstance(key, str))
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return keys


SCALAR_MEMBERS = {"str", "int", "float", "bool", "none", "bytes"}  # pydantic's labels of union members, with constrained- forms
VALUE_KINDS = ((bool, "bool"), (str, "str"), (int, "int"), (float, "float"), (Mapping, "dict"), (list, "list"), (type(None), "none"))


def _is_member(part: Any, chosen: set[str]) -> bool:
    """Whether a location part is pydantic's label of a union member (`dict[str,...]`,
    `constrained-str`), never a field an agent can act on; a key the caller chose is its own."""
    return isinstance(part, str) and part not in chosen and ("[" in part or part.removeprefix("constrained-") in SCALAR_MEMBERS)


def _member_fits(label: str, value: Any) -> bool:
    kind = next((name for cls, name in VALUE_KINDS if isinstance(value, cls)), None)
    return kind is not None and label.removeprefix("constrained-").startswith(kind)


def _value_at(arguments: Any, parts: list[Any]) -> Any:
    for part in parts:
        try:
            arguments = arguments[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return arguments


_MISSING = object()


def _fitting(errors: list[Any], arguments: Mapping[str, Any], chosen: set[str]) -> list[Any]:
    """Of the members a union tried, the errors of the one the value's type fits (a mapping is not
    told it should be a string); every member's when none fits."""
    verdicts = [_member_verdict(e["loc"], arguments, chosen) for e in errors]
    fitted = {prefix for prefix, fits in verdicts if fits}
    return [e for e, (prefix, fits) in zip(errors, verdicts, strict=True) if prefix is None or fits or prefix not in fitted]


def _member_verdict(loc: tuple[Any, ...], arguments: Mapping[str, Any], chosen: set[str]) -> tuple[tuple[Any, ...] | None, bool]:
    """(where the union is, whether the value there fits the member this error is of); (None, True)
    for an error outside any union."""
    index = next((i for i, part in enumerate(loc) if _is_member(part, chosen)), None)
    if index is None:
        return None, True
    value = _value_at(arguments, [part for part in loc[:index] if not _is_member(part, chosen)])
    return loc[:index], _member_fits(loc[index], value)


def _message(error: Any, loc: list[Any], chosen: set[str], models: Mapping[str, type[BaseModel]]) -> str:
    """pydantic's message, but what is needed where pydantic names its internals: how many items of
    a too short collection, which fields an object (a nested model) takes."""
    ctx = error.get("ctx") or {}
    if error["type"] == "model_type" and ctx.get("class_name") in models:
        return _object_needed(models[ctx["class_name"]])
    if _takes(error, loc, models) is not None:
        return f"unknown {'argument' if len(loc) == 1 else 'field'}"
    if error["type"] == "string_pattern_mismatch" and (described := _description(loc, models)):
        return f"not of the form needed: {described.rstrip('.')} (pattern {(error.get('ctx') or {}).get('pattern')})"  # the field's own words first: a regex alone says little
    if error["type"] != "too_short" or "min_length" not in ctx:
        return error["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own words
    count, name = ctx["min_length"], str(loc[-1]) if loc and _shown(loc[-1], chosen) == loc[-1] else ""
    if not name.endswith("s"):
        return f"at least {count} item{'s are' if count != 1 else ' is'} needed"
    return f"at least {count} {name} are needed" if count != 1 else f"at least 1 {name.removesuffix('s')} is needed"


def _description(loc: list[Any], models: Mapping[str, type[BaseModel]]) -> str | None:
    holder = _holder(models[ROOT], loc) if ROOT in models and loc and isinstance(loc[-1], str) else None
    field = holder.model_fields.get(loc[-1]) if holder is not None else None
    return field.description if field is not None else None


def _object_needed(model: type[BaseModel]) -> str:
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    optional = [name for name, field in model.model_fields.items() if not field.is_required()]
    return f"an object is needed, with {', '.join(required)}" + (f" (optional: {', '.join(optional)})" if optional else "")


def _takes(error: Any, loc: list[Any], models: Mapping[str, type[BaseModel]]) -> str | None:
    """For an unknown name: what the tool (or the object holding it) takes instead; else None."""
    holder = _holder(models[ROOT], loc) if error["type"] == "extra_forbidden" and ROOT in models else None
    if holder is None:
        return None
    # the path up to the unknown name is the schema's own: the walk went through its fields
    taker = "this tool" if len(loc) == 1 else ".".join(map(str, loc[:-1]))
    return f"{taker} takes {', '.join(holder.model_fields)}"


def _holder(root: type[BaseModel], loc: list[Any]) -> type[BaseModel] | None:
    """The model whose field the last part of `loc` would be: the tool's input or an object it nests."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        field = model.model_fields.get(part) if model is not None and isinstance(part, str) else None
        model = _model_in(field.annotation) if field is not None else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, get_args(annotation)) if m is not None), None)


def nested_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The models a tool's input nests (its `reasoning` object...), by class name: pydantic's
    errors name them so."""
    found: dict[str, type[BaseModel]] = {}
    pending = [field.annotation for field in model.model_fields.values()]
    while pending:
        kind = pending.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel) and kind.__name__ not in found:
            found[kind.__name__] = kind
            pending.extend(field.annotation for field in kind.model_fields.values())
        pending.extend(get_args(kind))
    return found


def _loc(error: Any, chosen: set[str]) -> list[Any]:
    return [part for part in error["loc"] if not _is_member(part, chosen)]


def _problem(error: Any, chosen: set[str], models: Mapping[str, type[BaseModel]]) -> str:
    loc = _loc(error, chosen)
    return f"{_field_path(tuple(loc), chosen)}: {_message(error, loc, chosen, models)}"


def validation_denial(exc: ValidationError, arguments: Mapping[str, Any], model: type[BaseModel] | None = None) -> InvalidInput:
    """Field paths and messages only: rejected values are the caller's data and stay out; a union's
    member labels are pydantic's internals and stay out too. At most MAX_PROBLEMS are listed, so a
    flood of bad fields cannot swell the reply or the audit record. `model`, the input model, names
    the fields of the objects it nests."""
    chosen, models = _keys(arguments), {ROOT: model, **nested_models(model)} if model else {}
    errors = _fitting(exc.errors(include_url=False, include_input=False), arguments, chosen)
    listed = errors[:MAX_PROBLEMS]
    problems = list(dict.fromkeys(_problem(e, chosen, models) for e in listed))
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"and {len(errors) - MAX_PROBLEMS} more")
    problems += dict.fromkeys(t for e in listed if (t := _takes(e, _loc(e, chosen), models)) is not None)
    return InvalidInput(
        "invalid arguments: " + "; ".join(problems),
        "fix the listed fields; the tool's input schema lists every field, its type and bounds",
        rule_id="input.schema",
    )
