"""Hardened YAML/JSON loading for anything a client or a workspace file supplies.

PyYAML's SafeLoader still accepts constructs that are hazards in a governance file, so the node
graph is checked while it is composed, before any Python value exists:

- anchors and aliases are refused outright (no alias bombs, no shared sub-trees);
- explicit tags other than the core schema's (str, int, float, bool, null, seq, map) are refused;
- nesting deeper than `max_depth` and more than `max_nodes` nodes are refused; so are documents
  over `max_bytes` (checked before parsing) and streams with more than one document;
- mapping keys must be unique strings, and the YAML 1.1 merge key `<<` is refused.

Plain scalars are read with the YAML 1.2 core schema (what JSON and most tools mean). A plain
scalar that YAML 1.1 readers take for something else (`yes`, `on`, `010`, `1_000`, `1:20`) is
refused as ambiguous instead of guessed at; YAML 1.1 timestamps stay strings. JSON is YAML, so
JSON documents load too. `dump_document` writes YAML that reads back to the same values, with
every character a reader cannot see (zero-width and bidi controls, other format characters,
controls, separators other than the space) as an escape, so a reviewer of the diff sees it.

Every refusal is an InvalidInput with rule_id `input.document` naming the problem and its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from tools.errors import InvalidInput
from tools.secrets_scan import secret_kind_of_value

RULE_ID = "input.document"
CORE = "tag:yaml.org,2002:"
EXPLICIT_TAGS = frozenset(CORE + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))
PLAIN, QUOTED = "mlgate:plain", "mlgate:quoted"

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_YAML11 = Resolver()


def _refuse(name: str, problem: str, node_or_mark: Any = None, remediation: str = "") -> InvalidInput:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    where = f" at line {mark.line + 1}" if mark is not None and hasattr(mark, "line") else ""
    return InvalidInput(f"{name}: {_masked(problem)}{where}", remediation or "rewrite the document as plain YAML or JSON: mappings, lists and scalars only", rule_id=RULE_ID)


# The document's own text a problem quotes: a repr'd key or scalar, an anchor or alias name.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|(?<=[&*])[^\s()]+")
HIDDEN = "<not shown: looks like a credential>"


def _masked(problem: str) -> str:
    """`problem` with every quoted piece of the document that looks like a credential hidden: a
    refusal reaches the tool result and the audit chain, which must never hold one."""
    if not secret_kind_of_value(problem):
        return problem
    masked = _QUOTED.sub(lambda m: HIDDEN if secret_kind_of_value(m.group(0)) else m.group(0), problem)
    return HIDDEN if secret_kind_of_value(masked) else masked


# --- scalars: YAML 1.2 core schema, refusing YAML 1.1 ambiguities ---------------------------


def _core_value(text: str) -> Any:
    """The value of a plain scalar under the YAML 1.2 core schema. Raises ValueError."""
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text[2:], 8) if text.startswith("0o") else int(text, 16) if text.startswith("0x") else int(text, 10)
    if _FLOAT.match(text):
        lowered = text.lower()
        return float(lowered.replace(".inf", "inf").replace(".nan", "nan")) if "n" in lowered else float(text)
    return text


def _yaml11_value(text: str) -> tuple[str, Any]:
    """How a YAML 1.1 reader (PyYAML's SafeLoader) would read the plain scalar `text`."""
    tag = _YAML11.resolve(ScalarNode, text, (True, False))
    if tag in (CORE + "str", CORE + "timestamp", CORE + "merge", CORE + "value"):
        return tag, text
    return tag, SafeConstructor().construct_object(ScalarNode(tag, text))


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


def plain_scalar(text: str) -> Any:
    """The value of a plain scalar. Raises ValueError when YAML 1.1 and 1.2 readers disagree."""
    value = _core_value(text)
    tag11, value11 = _yaml11_value(text)
    if tag11 in (CORE + "merge", CORE + "value"):
        raise ValueError(f"plain scalar {text!r} has a special meaning in YAML 1.1; quote it")
    if tag11 in (CORE + "str", CORE + "timestamp") or _same(value, value11):
        return value
    raise ValueError(f"plain scalar {text!r} is ambiguous (YAML 1.1 reads {value11!r}, YAML 1.2 reads {value!r}); quote it for a string or write the value plainly (true, false, 8, 1000)")


def reads_back(text: str) -> bool:
    """Whether `text`, written as a plain scalar, reads back as this very string."""
    try:
        return _same(plain_scalar(text), text)
    except ValueError:
        return False


def _explicit_scalar(tag: str, text: str) -> Any:
    """A scalar with an explicit core tag (`!!int "3"`). Raises ValueError on a mismatch."""
    kind = tag.removeprefix(CORE)
    if kind == "str":
        return text
    value = _core_value(text)
    wanted = {"null": type(None), "bool": bool, "int": int, "float": (int, float)}[kind]
    if kind != "bool" and isinstance(value, bool) or not isinstance(value, wanted):
        raise ValueError(f"{text!r} is not a valid !!{kind}")
    return float(value) if kind == "float" else value


# --- composition with guards ------------------------------------------------------------------


class _GuardedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses aliases, anchors, foreign tags, depth and size excess."""

    def __init__(self, stream: bytes, limits: Mapping[str, Any], name: str) -> None:
        super().__init__(stream)
        self.name = name
        self.max_depth, self.max_nodes = int(limits["max_depth"]), int(limits["max_nodes"])
        self.depth = self.nodes = 0

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return PLAIN if implicit[0] else QUOTED
        return super().resolve(kind, value, implicit)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        self._guard(event)
        nested = isinstance(event, CollectionStartEvent)
        self.depth += nested
        if self.depth > self.max_depth:
            raise _refuse(self.name, f"nesting deeper than {self.max_depth} levels", event.start_mark, "flatten the document")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= nested

    def _guard(self, event: Any) -> None:
        if isinstance(event, AliasEvent):
            raise _refuse(self.name, f"alias *{event.anchor} (anchors and aliases are not accepted)", event.start_mark, "write the values out in full")
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _refuse(self.name, f"anchor &{event.anchor} (anchors and aliases are not accepted)", event.start_mark, "write the values out in full")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in EXPLICIT_TAGS:
            raise _refuse(self.name, f"tag {tag!r} is not allowed (core schema only)", event.start_mark)
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise _refuse(self.name, f"more than {self.max_nodes} nodes", event.start_mark, "submit a smaller document")


# --- construction from the checked node graph -------------------------------------------------


def _construct(node: Node, name: str) -> Any:
    if isinstance(node, MappingNode):
        return _mapping(node, name)
    if isinstance(node, SequenceNode):
        if node.tag != CORE + "seq":
            raise _refuse(name, f"tag {node.tag!r} on a sequence", node)
        return [_construct(item, name) for item in node.value]
    return _scalar(node, name)


def _scalar(node: ScalarNode, name: str) -> Any:
    try:
        text = _unicode(node.value)
        if node.tag == PLAIN:
            return plain_scalar(text)
        if node.tag == QUOTED:
            return text
        if node.tag in EXPLICIT_TAGS - {CORE + "seq", CORE + "map"}:
            return _explicit_scalar(node.tag, text)
        raise ValueError(f"tag {node.tag!r} on a scalar")
    except ValueError as exc:
        raise _refuse(name, str(exc), node) from None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unicode(text: str) -> str:
    """`text` with escaped surrogate pairs ("\\ud83d\\ude00") joined into their character. Raises
    ValueError for a lone surrogate: no reply, audit record or file could be encoded with it."""
    if not _SURROGATE.search(text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise ValueError("a string holds a lone surrogate escape (\\ud800-\\udfff), which is not Unicode text; write the character itself or a complete pair") from None


def _mapping(node: MappingNode, name: str) -> dict[str, Any]:
    if node.tag != CORE + "map":
        raise _refuse(name, f"tag {node.tag!r} on a mapping", node)
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = _key(key_node, name)
        if key in result:
            raise _refuse(name, f"duplicate key {key!r}", key_node, "give each key once")
        result[key] = _construct(value_node, name)
    return result


def _key(node: Node, name: str) -> str:
    if isinstance(node, ScalarNode) and node.tag == PLAIN and node.value == "<<":
        raise _refuse(name, "merge key '<<' (merge keys are not accepted)", node, "write every field out explicitly")
    if not isinstance(node, ScalarNode):
        raise _refuse(name, "a mapping key that is not a scalar", node, "use string keys")
    key = _scalar(node, name)
    if not isinstance(key, str):
        raise _refuse(name, f"mapping key {node.value!r} is not a string", node, "quote the key")
    return key


# --- public API --------------------------------------------------------------------------------


def _compose(raw: bytes, limits: Mapping[str, Any], name: str) -> Node | None:
    try:
        loader = _GuardedLoader(raw, limits, name)
    except yaml.YAMLError as exc:
        raise _refuse(name, f"not readable as YAML text ({getattr(exc, 'reason', type(exc).__name__)})") from None
    try:
        return loader.get_single_node()
    except yaml.composer.ComposerError as exc:
        if "single document" in str(exc):
            raise _refuse(name, "more than one document in the stream", exc.problem_mark, "submit exactly one document") from None
        raise _refuse(name, f"{exc.problem}", exc.problem_mark) from None
    except yaml.MarkedYAMLError as exc:
        raise _refuse(name, f"not valid YAML: {exc.problem}", exc.problem_mark) from None
    except yaml.YAMLError as exc:
        raise _refuse(name, f"not readable as YAML ({type(exc).__name__})") from None
    finally:
        loader.dispose()


def load_document(data: bytes | str, limits: Mapping[str, Any], *, name: str = "document") -> dict[str, Any]:
    """Parse one YAML/JSON mapping under `limits` (max_bytes, max_depth, max_nodes).

    Raises InvalidInput (rule_id input.document) for every hazard listed in the module docstring,
    for invalid YAML, and when the document is not a mapping.
    """
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > int(limits["max_bytes"]):
        raise _refuse(name, f"{len(raw)} bytes, over the {limits['max_bytes']} byte cap", None, "submit a smaller document")
    node = _compose(raw, limits, name)
    if not isinstance(node, MappingNode):
        raise _refuse(name, "the document must be a mapping (key: value pairs)", node)
    return _mapping(node, name)


def check_value(value: Any, limits: Mapping[str, Any], *, name: str = "document") -> None:
    """Apply the document limits to an already-parsed value (e.g. JSON tool arguments).

    Raises InvalidInput (rule_id input.document) on excess depth, node count or non-string keys.
    """
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > int(limits["max_nodes"]):
            raise _refuse(name, f"more than {limits['max_nodes']} nodes", None, "submit a smaller document")
        if isinstance(item, (dict, list)) and depth > int(limits["max_depth"]):
            raise _refuse(name, f"nesting deeper than {limits['max_depth']} levels", None, "flatten the document")
        if isinstance(item, dict) and not all(isinstance(k, str) for k in item):
            raise _refuse(name, "a mapping key that is not a string", None, "use string keys")
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _unseen(ch: str) -> bool:
    """A character a reader of the file cannot see for what it is: Python's non-printables (Unicode
    Other and Separator categories but the space: zero-width, bidi and other format characters,
    controls, no-break and other spaces, line separators). A newline is seen as a line break."""
    return not ch.isprintable() and ch != "\n"


_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _escape(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(text: str) -> str:
    """The body of a YAML double-quoted scalar for `text` with every unseen character (and the
    newline, quote and backslash) escaped: `loan\\u200bstatus` for a zero-width space in `loanstatus`."""
    return "".join(map(_escape, text))


class ShownCharacters:
    """Emitter mixin for PyYAML's and ruamel.yaml's emitters (one design): a scalar holding an unseen
    character is written double-quoted with it escaped, on one line (the emitters' own writer would
    keep a zero-width or bidi character raw, since allow_unicode lets every printable code point
    through). Readers turn the escapes back into the exact same string."""

    def choose_scalar_style(self) -> Any:
        style = super().choose_scalar_style()
        value = self.event.value
        if isinstance(value, str) and any(map(_unseen, value)):
            return '"'
        # ruamel.yaml writes YAML 1.2, where `Yes` and `on` are plain strings; mlgate's reader
        # refuses them as YAML 1.1 booleans, so a string that would not read back is quoted.
        if style == "" and str(self.event.tag) == CORE + "str" and not reads_back(value):
            return "'" if self.analysis.allow_single_quoted else '"'
        return style

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        if not any(map(_unseen, text)):
            return super().write_double_quoted(text, split)
        self.write_indicator('"', True)
        data = shown(text)
        self.column += len(data)
        self.stream.write(data.encode(self.encoding) if self.encoding else data)
        self.write_indicator('"', False)
        return None


class _CoreDumper(ShownCharacters, yaml.SafeDumper):
    """SafeDumper that also quotes strings a YAML 1.2 reader would take for another type, and shows
    unseen characters as escapes."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "'" if not isinstance(_core_value(text), str) and "\n" not in text else None
    return dumper.represent_scalar(CORE + "str", text, style=style)


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.SequenceNode:
    """Short lists of scalars stay on one line (`metrics: [roc_auc, f1]`), the rest in block style."""
    flat = all(isinstance(i, (str, int, float, bool)) or i is None for i in items) and len(repr(items)) <= 80
    return dumper.represent_sequence(CORE + "seq", items, flow_style=flat)


_CoreDumper.add_representer(str, _represent_str)
_CoreDumper.add_representer(list, _represent_list)


def dump_document(data: Mapping[str, Any], *, header: str = "") -> str:
    """Block-style YAML in the mapping's own key order that `load_document` reads back unchanged."""
    body = yaml.dump(dict(data), Dumper=_CoreDumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return header + body
