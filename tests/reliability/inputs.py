"""Fuzzed tool arguments, generated from each tool's input JSON schema and then mutated: wrong types,
extra and missing fields, huge strings, deep nesting, values just past their bounds and hostile
text (paths, git options, shell, NUL, URLs). Seeded: the same seed gives the same inputs, so any
failure found by bench/reliability.py or the tests is replayed by its seed and index."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator, Mapping
from typing import Any

HOSTILE = (
    "../../etc/passwd", "/etc/shadow", "..", ".", "", " ", "-rf", "--upload-pack=touch /tmp/pwn", "-oProxyCommand=id",
    "main", "refs/heads/main", "HEAD~1", "x\x00y", "$(id)", "`id`", "${HOME}", "%2e%2e%2f", "C:\\Windows\\system32",
    "file:///etc/passwd", "http://user:pw@127.0.0.1:1/x", "apr-000000000000", "0" * 64, "f" * 32, "\n", "\u202e\u0000",
    "😀" * 50, "' OR 1=1 --", "<script>alert(1)</script>", "{{7*7}}", "champion", "candidate",
)  # fmt: skip
BIG_STRING = 70_000  # just over configs/policy.yaml documents.max_bytes (65536)
DEEP = 60  # past documents.max_depth (12) and deep enough to stress recursive validators


def resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return resolve(root["$defs"][ref.rsplit("/", 1)[1]], root)
    return schema


def _string(schema: Mapping[str, Any], rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.4:
        return rng.choice(HOSTILE)
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if choice < 0.6 and high is not None:
        return rng.choice("abcdef0123456789") * (int(high) + rng.choice((0, 1)))  # at and just past the cap
    size = rng.randint(low, max(low, 40))
    return "".join(rng.choice(string.ascii_letters + string.digits + "._-/") for _ in range(size))


def _number(schema: Mapping[str, Any], rng: random.Random, integer: bool) -> int | float:
    bounds = [schema.get(k) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if schema.get(k) is not None]
    edges = [b + d for b in bounds for d in (-1, 0, 1)] + [0, -1, 2**63, -(2**63), 10**30]
    value = rng.choice(edges) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
    return int(value) if integer else float(value) + rng.choice((0.0, 0.5))


def value_for(schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value shaped by `schema` (often valid, often at or past its bounds)."""
    schema = resolve(schema, root)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return value_for(rng.choice(options), root, rng, depth)
    if "enum" in schema:
        return rng.choice(list(schema["enum"]) + ["not-an-option"])
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "string":
        return _string(schema, rng)
    if kind in ("integer", "number"):
        return _number(schema, rng, kind == "integer")
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        return [value_for(schema.get("items") or {}, root, rng, depth + 1) for _ in range(rng.randint(0, 6 if depth < 3 else 1))]
    if kind == "object" or "properties" in schema:
        return _object(schema, root, rng, depth)
    return rng.choice([None, "x", 1, 1.5, True, [], {}])


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    if properties:
        return {name: value_for(sub, root, rng, depth + 1) for name, sub in properties.items() if name in schema.get("required", ()) or rng.random() < 0.6}
    extra = schema.get("additionalProperties")
    sub = extra if isinstance(extra, Mapping) else {}
    return {_string({"maxLength": 30}, rng): value_for(sub, root, rng, depth + 1) for _ in range(rng.randint(0, 4 if depth < 3 else 1))}


def deep(rng: random.Random) -> Any:
    value: Any = "leaf"
    for _ in range(DEEP):
        value = {"k": value} if rng.random() < 0.5 else [value]
    return value


WRONG_TYPES = (None, True, 0, -1, 1.5, "", "x", [], {}, [None], {"": None})


def mutate(arguments: dict[str, Any], schema: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """One mutation of a generated argument object."""
    names = list((schema.get("properties") or {}).keys()) or ["field"]
    out = dict(arguments)
    kind = rng.randrange(6)
    if kind == 0:
        out[rng.choice(names)] = rng.choice(WRONG_TYPES)
    elif kind == 1:
        out[rng.choice(["confirm", "approved", "role", "__proto__", "$ref", "dry_run ", rng.choice(HOSTILE)])] = True
    elif kind == 2 and out:
        out.pop(rng.choice(list(out)))
    elif kind == 3:
        out[rng.choice(names)] = "A" * BIG_STRING
    elif kind == 4:
        out[rng.choice(names)] = deep(rng)
    else:
        out[rng.choice(names)] = {rng.choice(HOSTILE): rng.choice(HOSTILE) for _ in range(rng.randint(1, 5))}
    return out


def fuzzed_arguments(schema: Mapping[str, Any], count: int, seed: int) -> Iterator[dict[str, Any]]:
    """`count` argument objects for a tool: a third as generated, two thirds mutated."""
    rng = random.Random(seed)
    for index in range(count):
        generated = value_for(schema, schema, rng)
        generated = generated if isinstance(generated, dict) else {}
        yield generated if index % 3 == 0 else mutate(generated, schema, rng)
