"""The model card as an auditor reads it at a terminal (`mlgate models card MODEL`): what the model
is for and cannot claim, where it came from, how it measured, which gates it passed, who approved
and promoted it. `--json` prints the whole document instead; nothing here adds or drops a fact the
reader may not see (the card served is already the agent's or the human's, resources/model_cards.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from tools.sealed import SEALED_NOTE

SEALED_AT_TERMINAL = "sealed (a human or operator token in MLGATE_TOKEN shows the figures)"
HEADLINE = re.compile(r"^(val|test)_(accuracy|brier|f1|log_loss|pr_auc|precision|recall|roc_auc)$")


def _figure(metrics: Mapping[str, Any], name: str) -> str:
    """`0.8452 (95% CI 0.81-0.88)` when the run logged the interval."""
    low, high = metrics.get(f"{name}_ci95_low"), metrics.get(f"{name}_ci95_high")
    interval = f" (95% CI {low:.4f}-{high:.4f})" if isinstance(low, float) and isinstance(high, float) else ""
    return f"{metrics[name]:.4f}{interval}"


def _terminal(value: Any) -> Any:
    """The agent card's sealed note, as what a person at the terminal can do about it."""
    return SEALED_AT_TERMINAL if value == SEALED_NOTE else value


def _metric_lines(title: str, metrics: Any) -> list[str]:
    if not isinstance(metrics, Mapping):
        return [f"{title}: {_terminal(metrics)}"]
    shown = [f"  {name:<14} {_figure(metrics, name)}" for name in sorted(metrics) if HEADLINE.match(name) and isinstance(metrics[name], (int, float))]
    return [f"{title}:", *(shown or ["  none logged"])]


def _gate_lines(gates: list[Mapping[str, Any]]) -> list[str]:
    counts: dict[str, int] = {}
    for gate in gates:
        counts[str(gate.get("status"))] = counts.get(str(gate.get("status")), 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return [f"gates ({summary}):", *(f"  {str(g.get('status')):<8} {str(g.get('gate')):<24} {g.get('reason')}" for g in gates)]


def _fairness_lines(fairness: Mapping[str, Any]) -> list[str]:
    lines = []
    for basis, attributes in sorted(fairness.items()):
        if not isinstance(attributes, Mapping):
            lines.append(f"  {basis}: {_terminal(attributes)}")
            continue
        for name, found in sorted(attributes.items()):
            ratio, met = found.get("selection_rate_ratio_min_max"), found.get("four_fifths_met")
            verdict = "no positive predictions to compare" if ratio is None else f"selection-rate ratio {ratio:.3f} ({'meets' if met else 'below'} four-fifths)"
            lines.append(f"  {basis} {name}: {verdict}")
            lines += [f"      {label}: {_slice_text(found['slices'][label])}" for label in slice_order(found.get("slices") or {})]
    return ["fairness:", *(lines or ["  no protected attribute sliced"])]


def _edge(label: str) -> float:
    """Where a binned slice starts: "< 30" first, "[30, 45)" at 30, ">= 45" at 45, "<missing>" last."""
    if label == "<missing>":
        return math.inf
    if label.startswith("<"):
        return -math.inf
    found = re.search(r"-?\d+(\.\d+)?(e[-+]?\d+)?", label)
    return float(found.group()) if found else math.nan


def slice_order(slices: Mapping[str, Any]) -> list[str]:
    """Binned slices in the order of their bins (JSON sorts "< 32" after ">= 75"), other slices by size."""
    if slices and all(not math.isnan(_edge(label)) for label in slices):
        return sorted(slices, key=_edge)
    return sorted(slices, key=lambda label: (-int((slices[label] or {}).get("count") or 0), label))


def _slice_text(found: Mapping[str, Any]) -> str:
    figures = [f"{found.get('count')} rows"]
    if found.get("status") not in (None, "ok"):
        figures.append(str(found["status"]))
    figures += [f"{key.replace('_', ' ')} {found[key]:.3f}" for key in ("selection_rate", "selection_rate_ratio", "roc_auc") if isinstance(found.get(key), (int, float))]
    return ", ".join(figures)


def _approval_lines(card: Mapping[str, Any]) -> list[str]:
    approvals = [f"  {a.get('id')} by {a.get('decided_by')} at {a.get('decided_at')}" for a in card.get("approvals") or []]
    promoted = card.get("promoted_by") or {}
    return ["approvals:", *(approvals or ["  none"]), f"promoted by {promoted.get('name')} ({promoted.get('role')}) at {card.get('promoted_at')}"]


def _reproduction_line(reproduction: Mapping[str, Any]) -> str:
    seeds = reproduction.get("seed_runs") or {}
    seeds_text = f"; seeds {seeds.get('seeds')}: {_terminal(seeds.get('values'))}" if seeds else ""
    return f"reproduction: run {reproduction.get('run_id')} reproduced={reproduction.get('reproduced')}{seeds_text}"


def card_lines(served: Mapping[str, Any]) -> list[str]:
    """The card resource's JSON (`{model, version, alias, run_id, aliases, source, card}`) as text."""
    card = served["card"]
    head = [f"{served['model']} v{served['version']} ({served['alias']}; aliases: {', '.join(served['aliases'])})  run {served['run_id']}", f"source: {served['source']}"]
    if "intended_use" not in card:  # the version's card.* tags: the run's artifact could not be read
        return [*head, *(f"{key}: {value}" for key, value in sorted(card.items()))]
    metrics = card.get("metrics") or {}
    return [
        *head,
        f"intended use: {card.get('intended_use')}",
        "limitations:", *(f"  - {text}" for text in card.get("limitations") or []),
        "provenance:", *(f"  {key:<22} {value}" for key, value in (card.get("provenance") or {}).items()),
        *_metric_lines("validation metrics", metrics.get("validation")),
        *_metric_lines("sealed test metrics", metrics.get("sealed_test")),
        *_gate_lines([g for g in card.get("gates") or [] if isinstance(g, Mapping)]),
        *_fairness_lines(card.get("fairness") or {}),
        _reproduction_line(card.get("reproduction") or {}),
        *_approval_lines(card),
    ]  # fmt: skip
