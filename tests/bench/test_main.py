"""`python -m bench NAME` runs the named benchmark with its defaults: the names on the command line
are not its arguments."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from bench.__main__ import _run


def test_a_named_benchmark_without_options_gets_no_arguments_not_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench", "run_experiment_overhead"])
    seen: list[list[str]] = []
    module = SimpleNamespace(main=lambda argv=None: seen.append(sys.argv[1:] if argv is None else argv))
    _run(module, [])
    _run(module, ["--quick"])
    assert seen == [[], ["--quick"]]


def test_a_benchmark_without_options_is_called_without_arguments() -> None:
    calls: list[str] = []
    _run(SimpleNamespace(main=lambda: calls.append("ran")), [])
    assert calls == ["ran"]
