"""The fuzz oracle and generator themselves: an oracle that could not fail would prove nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.reliability.checks import problems
from tests.reliability.inputs import BIG_STRING, fuzzed_arguments


@dataclass
class Block:
    text: str


@dataclass
class Result:
    """A recorded tool result (the fields the oracle reads)."""

    is_error: bool
    text: str
    structured_content: dict[str, Any] = field(default_factory=dict)

    @property
    def content(self) -> list[Block]:
        return [Block(self.text)]


def test_a_clean_denial_passes() -> None:
    assert problems(Result(True, "{}", {"rule_id": "input.schema", "reason": "bad"}), ["/srv/ws"]) == []


def test_an_error_without_rule_id_a_traceback_or_a_server_path_is_caught() -> None:
    assert problems(Result(True, "Error executing tool x"), []) != []
    assert problems(Result(False, 'Traceback (most recent call last):\n  File "/x.py", line 1'), []) != []
    assert problems(Result(True, "{}", {"rule_id": "r", "reason": "no file /srv/ws/.mlgate/audit.jsonl"}), ["/srv/ws"]) != []


def test_the_generator_is_seeded_and_reaches_past_the_caps() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer", "maximum": 5}}, "required": ["name"]}
    first, second = list(fuzzed_arguments(schema, 300, seed=7)), list(fuzzed_arguments(schema, 300, seed=7))
    assert first == second
    flat = [v for args in first for v in args.values()]
    assert any(isinstance(v, str) and len(v) == 9 for v in flat) and any(isinstance(v, str) and len(v) == BIG_STRING for v in flat)
    assert any(isinstance(v, int) and not isinstance(v, bool) and v > 5 for v in flat)
    assert any(set(args) - {"name", "n"} for args in first) and any("name" not in args for args in first)
