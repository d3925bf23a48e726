"""The model card as `mlgate models card` prints it."""

from __future__ import annotations

from server.commands.card_text import card_lines, slice_order
from tools.sealed import SEALED_NOTE

HEAD = {"model": "demo-bank-credit-default", "version": "2", "alias": "candidate", "aliases": ["candidate"], "run_id": "1" * 32, "source": "run artifact model_card.json"}


def test_fairness_lines_say_whether_each_attribute_meets_four_fifths() -> None:
    fairness = {"validation": {"gender": {"selection_rate_ratio_min_max": 0.61, "four_fifths_met": False}, "age": {"selection_rate_ratio_min_max": None}},
                "sealed_test": SEALED_NOTE}  # fmt: skip
    lines = card_lines({**HEAD, "card": {"intended_use": "scoring", "fairness": fairness, "metrics": {"validation": {}, "sealed_test": SEALED_NOTE}}})
    assert "  validation gender: selection-rate ratio 0.610 (below four-fifths)" in lines
    assert "  validation age: no positive predictions to compare" in lines
    assert "  sealed_test: sealed (a human or operator token in MLGATE_TOKEN shows the figures)" in lines
    assert "validation metrics:" in lines and "  none logged" in lines


def test_a_card_served_from_version_tags_is_printed_tag_by_tag() -> None:
    lines = card_lines({**HEAD, "source": "model version tags card.*", "card": {"card.commit": "a" * 40, "card.intended_use": "scoring"}})
    assert lines[1:] == ["source: model version tags card.*", f"card.commit: {'a' * 40}", "card.intended_use: scoring"]


def test_gates_are_counted_by_status() -> None:
    gates = [{"gate": "run_clean", "status": "PASS", "reason": "clean"}, {"gate": "champion_tolerance", "status": "SKIPPED", "reason": "no champion yet"}]
    lines = card_lines({**HEAD, "card": {"intended_use": "scoring", "gates": gates}})
    assert "gates (1 PASS, 1 SKIPPED):" in lines and any(line.startswith("  SKIPPED  champion_tolerance") for line in lines)


def test_binned_slices_are_printed_in_the_order_of_their_bins() -> None:
    slices = {">= 75": {"count": 40, "status": "ok", "selection_rate": 0.1, "selection_rate_ratio": 0.5},
              "< 32": {"count": 90, "status": "ok", "selection_rate": 0.2, "selection_rate_ratio": 1.0},
              "[32, 46)": {"count": 12, "status": "insufficient"}, "<missing>": {"count": 3, "status": "insufficient"},
              "[46, 75)": {"count": 70, "status": "ok", "selection_rate": 0.15, "selection_rate_ratio": 0.75}}  # fmt: skip
    assert slice_order(slices) == ["< 32", "[32, 46)", "[46, 75)", ">= 75", "<missing>"]
    fairness = {"validation": {"age": {"selection_rate_ratio_min_max": 0.5, "four_fifths_met": False, "slices": slices}}}
    lines = card_lines({**HEAD, "card": {"intended_use": "scoring", "fairness": fairness}})
    start = lines.index("  validation age: selection-rate ratio 0.500 (below four-fifths)")
    assert lines[start + 1 : start + 3] == ["      < 32: 90 rows, selection rate 0.200, selection rate ratio 1.000", "      [32, 46): 12 rows, insufficient"]


def test_category_slices_are_printed_largest_first() -> None:
    assert slice_order({"F": {"count": 10}, "M": {"count": 30}, "X": {"count": 10}}) == ["M", "F", "X"]
