"""Every test here carries the `reliability` marker: `make test` (and so .ci/run) runs them at
small size; `pytest -m reliability` with the MLGATE_* sizes of each module runs them larger, and
`pytest -m "not reliability"` leaves them out of a quick local run. bench/reliability.py runs the
same functions at full size."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: fuzzing, load, kill -9 and storage-fault suites (tests/reliability/); small in CI")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
