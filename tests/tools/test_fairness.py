"""Fairness slices find a protected attribute by its column_key, as feature selection excludes it:
an attribute spelled otherwise in the data (`Ｇｅｎｄｅｒ`, `gen\u200bder`) still has its slices,
keyed by the standards' name and naming the dataset column sliced; in a real run too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server.commands.data import import_files
from server.ports import build_ports
from server.settings import load_settings
from server.workspace import init_workspace
from tests.messy_data import bad_labels, lending_frame
from tests.tools.test_run_experiment_messy import HONEST, REASONING, _configure, _lending_template, call
from tools.fairness import fairness_slices

SETTINGS = {"min_slice_size": 20, "bins": {"age": [30, 45, 60]}}
ROWS = np.arange(100, 400)


def _slices(frame: pd.DataFrame, attributes: tuple[str, ...] = ("age", "gender")) -> dict:
    labels = bad_labels(frame)[ROWS]
    scores = np.clip(labels * 0.5 + np.random.default_rng(4).random(ROWS.size) * 0.5, 0, 1)
    return fairness_slices(frame, ROWS, labels, scores, list(attributes), SETTINGS)


@pytest.mark.parametrize("spelling", ["Gender", "ｇｅｎｄｅｒ", "gen\u200bder", "gender "])
def test_a_protected_attribute_spelled_otherwise_in_the_data_is_sliced_under_the_standards_name(spelling: str) -> None:
    exact = _slices(lending_frame(400))
    slices = _slices(lending_frame(400).rename(columns={"gender": spelling, "age": "ＡＧＥ"}))
    assert set(slices) == {"age", "gender"}
    assert slices["gender"] == {**exact["gender"], "column": spelling} and slices["age"] == {**exact["age"], "column": "ＡＧＥ"}
    assert slices["age"]["bins"] == [30.0, 45.0, 60.0]  # the standards' bins, by the standards' name


def test_an_attribute_in_its_exact_spelling_names_no_other_column() -> None:
    slices = _slices(lending_frame(400), ("age", "gender", "race"))
    assert set(slices) == {"age", "gender"} and not {"column", "other_columns"} & (set(slices["age"]) | set(slices["gender"]))


def test_of_two_columns_of_one_attribute_the_exact_spelling_is_sliced_and_the_other_named() -> None:
    frame = lending_frame(400)
    frame.insert(0, "GENDER", "F")  # a constant column before it: slicing it would give a single "F" slice
    slices = _slices(frame)
    assert slices["gender"]["other_columns"] == ["GENDER"] and "column" not in slices["gender"]
    assert set(slices["gender"]["slices"]) == {"F", "M", "X", "<missing>"}
    first = _slices(frame.rename(columns={"gender": "Gender"}))["gender"]  # no exact one: the first in dataset order
    assert first["column"] == "GENDER" and first["other_columns"] == ["Gender"] and set(first["slices"]) == {"F"}


@pytest.mark.anyio
async def test_a_real_run_on_data_with_a_look_alike_protected_attribute_has_its_fairness_slices(tmp_path: Path) -> None:
    template = _lending_template(tmp_path, {"fairness": {"min_slice_size": 15, "bins": {"age": [30, 45, 60]}}})
    workspace = init_workspace(tmp_path / "ws", "demo-bank", "lending", template_dir=template)
    csv = tmp_path / "lending.csv"
    lending_frame(400, leaks=True, months=24).rename(columns={"gender": "Ｇｅｎｄｅｒ"}).to_csv(csv, index=False)
    _configure(workspace, import_files(workspace, [csv]).added.content_hash, True)
    settings = load_settings(workspace, transport="memory")
    lab = {"workspace": workspace, "settings": settings, "ports": build_ports(settings)}
    is_error, run = await call(lab, "run_experiment", {"reasoning": REASONING, "config": HONEST})
    assert not is_error, run
    assert run["columns"]["protected_attributes"] == {"present": ["age", "gender"], "absent": []}
    assert run["columns"]["matched"]["protected_attributes"] == {"gender": "Ｇｅｎｄｅｒ"}
    gender = run["fairness"]["gender"]
    assert gender["column"] == "Ｇｅｎｄｅｒ" and gender["slices"]["X"]["status"] == "insufficient" and {"F", "M"} <= set(gender["slices"])
    is_error, shown = await call(lab, "get_run", {"run_id": run["run_id"]})
    assert not is_error and shown["fairness"] == run["fairness"]
