"""The dataset registry file is the agent's to replace in stdio mode (DESIGN §9: same OS user, the
state directory on its disk). A FIFO or a symbolic link planted as `<state_dir>/datasets.json` is
read as an unreadable registry, at once: it registers nothing, and neither a load, an operator's
`mlgate data add` nor `mlgate audit verify` waits on it. Real store, registry, audit chain, FIFO."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitTimeout
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from server.cas import CasStore
from server.dataset_registry import report_unvouched_datasets
from tests.server.cas_helpers import added, imported, sources, store  # noqa: F401 - fixtures
from tools.errors import PolicyDenied

BOUND_S = 10.0


@contextmanager
def planted_fifo(path: Path) -> Iterator[None]:
    """A FIFO at `path`; on the way out, a writer end is opened and closed so that a reader still
    blocked in open() returns (a failing test must not leave a thread hanging)."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    try:
        yield
    finally:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader is blocked on it


def within_bound(call: Callable[[], Any]) -> Any:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(call).result(timeout=BOUND_S)
    except WaitTimeout:
        pytest.fail(f"still waiting on the planted FIFO after {BOUND_S} s")
    finally:
        pool.shutdown(wait=False)


def test_a_fifo_planted_as_the_registry_registers_nothing_without_waiting(store: CasStore, added: str) -> None:  # noqa: F811
    with planted_fifo(store.registry.path):
        registration = within_bound(lambda: store.registry.registration(added))
        assert registration.entry is None and "datasets.json" in registration.detail and "regular file" in registration.detail
        with pytest.raises(PolicyDenied) as refused:
            within_bound(lambda: store.load(added))
        assert refused.value.rule_id == "data.registered"
        assert within_bound(lambda: report_unvouched_datasets(store.registry.path.parent, store.registry.audit_path)) is False


def test_the_operator_imports_again_over_a_planted_fifo_and_the_dataset_loads(store: CasStore, added: str, sources: Path) -> None:  # noqa: F811
    with planted_fifo(store.registry.path):
        assert within_bound(lambda: imported(store, [sources / "part-a.csv", sources / "part-b.csv"])) == added
    assert store.registry.path.is_file() and store.load(added).manifest["rows"] == 60


def test_a_symlinked_registry_is_not_followed(store: CasStore, added: str, tmp_path: Path) -> None:  # noqa: F811
    real = tmp_path / "elsewhere.json"
    store.registry.path.rename(real)
    store.registry.path.symlink_to(real)
    registration = store.registry.registration(added)
    assert registration.entry is None and "regular file" in registration.detail
