"""Text from the state directory or the tracking store as the operator's terminal prints it.

Much of what the commands print was written by a client or sits in files an agent with its own
shell can edit (a requester's name, a PR title, run reasoning in MLflow params, card tags): a
control character in it (a terminal escape that clears the screen, recolours or moves text, a
line break, a bidi override that reverses what follows) is printed escaped, never acted on."""

from __future__ import annotations

from typing import Any


def printable(value: Any) -> str:
    """`value` as one line of plain text: every character Python calls unprintable (controls,
    format characters such as bidi overrides and zero-width spaces, line separators) escaped as
    `\\x1b`, `\\u202e`."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))
