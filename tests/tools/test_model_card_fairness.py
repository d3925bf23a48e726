"""The model card's fairness section: binned slices, insufficient slices, selection-rate ratios
against the most favoured slice, the four-fifths verdict; the sealed test slices stay from agents."""

from __future__ import annotations

import numpy as np

from tests.messy_data import bad_labels, lending_frame
from tools.evaluation import build_report
from tools.fairness import fairness_slices
from tools.model_card import agent_card, fairness_section, intended_use

SETTINGS = {"min_slice_size": 20, "bins": {"age": [30, 45, 60]}}


def _report() -> dict:
    frame = lending_frame(400)
    labels = bad_labels(frame)
    validation, test = np.arange(200, 300), np.arange(300, 400)
    scores = np.clip(labels * 0.5 + np.random.default_rng(4).random(400) * 0.5, 0, 1)
    slices = {name: fairness_slices(frame, rows, labels[rows], scores[rows], ["age", "gender"], SETTINGS) for name, rows in (("validation", validation), ("test", test))}
    return build_report({"fairness": slices["validation"], "sealed_test": {"slices": slices["test"]}})


def test_the_card_has_a_fairness_section_per_attribute_on_validation_and_sealed_test_rows() -> None:
    section = fairness_section(_report())
    age = section["validation"]["age"]
    assert age["bins"] == [30.0, 45.0, 60.0] and age["min_slice_size"] == 20
    assert age["slices"]["<missing>"] == {"count": age["slices"]["<missing>"]["count"], "status": "insufficient"}
    measured = [s for s in age["slices"].values() if s["status"] == "ok"]
    assert age["slices"][age["most_favoured"]]["selection_rate_ratio"] == 1.0 and all(0 <= s["selection_rate_ratio"] <= 1 for s in measured)
    assert age["four_fifths_met"] == (age["selection_rate_ratio_min_max"] >= 0.8)
    assert set(section["sealed_test"]) == {"age", "gender"}


def test_an_agent_reading_the_card_sees_validation_fairness_but_not_the_sealed_test_slices() -> None:
    card = {"fairness": fairness_section(_report()), "metrics": {"validation": {}, "sealed_test": {"test_roc_auc": 0.8}}}
    shown = agent_card(card)
    assert shown["fairness"]["validation"] == card["fairness"]["validation"] and not isinstance(shown["fairness"]["sealed_test"], dict)


def test_intended_use_names_every_positive_value() -> None:
    text = intended_use({"label": {"target": "loan_status", "positive_class": ["Charged Off", "Late"]}, "client_name": "b", "project_name": "p"})
    assert "loan_status is any of Charged Off, Late" in text


def test_the_card_names_the_dataset_column_sliced_when_its_spelling_differs_from_the_standards() -> None:
    frame = lending_frame(400).rename(columns={"gender": "Ｇｅｎｄｅｒ"})
    frame.insert(0, "GENDER", "F")  # a second column with the key of `gender`: the first in dataset order is sliced
    labels, rows = bad_labels(frame), np.arange(200, 400)
    scores = np.clip(labels * 0.5 + np.random.default_rng(4).random(400) * 0.5, 0, 1)
    slices = fairness_slices(frame, rows, labels[rows], scores[rows], ["age", "gender"], SETTINGS)
    section = fairness_section(build_report({"fairness": slices, "sealed_test": {"slices": slices}}))
    for basis in ("validation", "sealed_test"):
        assert section[basis]["gender"]["column"] == "GENDER" and section[basis]["gender"]["other_columns"] == ["Ｇｅｎｄｅｒ"]
        assert not {"column", "other_columns"} & set(section[basis]["age"])  # spelled as the standards: nothing added
