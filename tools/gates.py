"""The gate receipt (DESIGN §5): each configured gate of the standards checked against the figures
a run measured, PASS / FAIL / SKIPPED with the reason. Fails closed: a gate the server does not
know, a threshold that is not a number or a figure not measured is a FAIL. Pure, like
tools/evaluation.py whose report holds the receipt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tools.metric_names import REPORT_DIGITS, improvement


def _gate(gate: str, status: str, observed: Any, threshold: Any, reason: str) -> dict[str, Any]:
    return {"gate": gate, "status": status, "observed": observed, "threshold": threshold, "reason": reason}


def _measured(value: float | None) -> float | None:
    # Gates compare the figures the report shows (REPORT_DIGITS), so 0.74 - 0.745 is -0.005, not
    # -0.00500000000000006, and a value printed as passing never fails by float noise.
    return None if value is None else round(value, REPORT_DIGITS)


def _verdict(gate: str, value: float | None, passed: bool, threshold: float, wording: str) -> dict[str, Any]:
    if value is None:
        return _gate(gate, "FAIL", None, threshold, f"not measured ({wording} {threshold:g})")
    return _gate(gate, "PASS" if passed else "FAIL", value, threshold, f"{wording} {threshold:g}; observed {value:.6g}")


def _min_primary_metric(gate: str, threshold: float, metric: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    value = _measured(observed.get("primary_metric"))
    passed = value is not None and _measured(improvement(metric, value, threshold)) >= 0
    return _verdict(gate, value, passed, threshold, f"{metric} must be at least as good as")


def _paired_verdict(gate: str, paired: Mapping[str, Any], minimum: float, threshold: float, wording: str) -> dict[str, Any]:
    """A paired-bootstrap gate: PASS only when the lower confidence bound of the improvement clears
    `minimum`, so a difference within the noise of the rows never passes by luck or flips a gate."""
    low, point, level = _measured(paired.get("lower_bound")), _measured(paired.get("improvement")), paired.get("confidence")
    observed = {"improvement": point, "lower_bound": low, "confidence": level}
    if low is None:
        return _gate(gate, "FAIL", observed, threshold, f"not measured ({wording} {minimum:g})")
    passed = low >= minimum
    return _gate(gate, "PASS" if passed else "FAIL", observed, threshold, f"{wording} {minimum:g} at {level:g} confidence (paired bootstrap on the same rows); observed {point:.6g}, lower bound {low:.6g}")


def _min_lift_over_baseline(gate: str, threshold: float, metric: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(observed.get("baseline_paired"), Mapping):
        return _paired_verdict(gate, observed["baseline_paired"], threshold, threshold, f"lift of {metric} over the baseline must be >=")
    primary, baseline = observed.get("primary_metric"), observed.get("baseline_primary_metric")
    value = None if primary is None or baseline is None else _measured(improvement(metric, primary, baseline))
    return _verdict(gate, value, value is not None and value >= threshold, threshold, f"lift of {metric} over the baseline must be >=")


def _champion_tolerance(gate: str, threshold: float, metric: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    primary, champion = observed.get("primary_metric"), observed.get("champion_primary_metric")
    if observed.get("champion_unreadable"):
        return _gate(gate, "FAIL", None, threshold, f"{observed['champion_unreadable']}: the bar cannot be read, so it is not lowered")
    if champion is None:
        return _gate(gate, "SKIPPED", None, threshold, "no champion yet")
    if isinstance(observed.get("champion_paired"), Mapping):
        paired = observed["champion_paired"]
        verdict = _paired_verdict(gate, paired, -threshold, threshold, f"{metric} minus the champion's must be >=")
        # Said when the champion's scores come from its model run on this run's rows, not its own test window.
        return {**verdict, "reason": f"{verdict['reason']}; {paired['rows_note']}"} if paired.get("rows_note") else verdict
    value = None if primary is None else _measured(improvement(metric, primary, champion))
    verdict = _verdict(gate, value, value is not None and value >= -threshold, threshold, f"{metric} may trail the champion by at most")
    unpaired = observed.get("champion_unpaired")
    # A reader of the receipt must not take two windows' figures for one comparison on the same rows.
    return {**verdict, "reason": f"{verdict['reason']}; {unpaired}"} if unpaired else verdict


def _calibration_vs_prior(gate: str, threshold: float, metric: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    paired = observed.get("calibration_paired")
    if not isinstance(paired, Mapping):
        return _gate(gate, "FAIL", None, threshold, "not measured (calibration against the class-prior baseline)")
    return _paired_verdict(gate, paired, threshold, threshold, f"{paired.get('metric')} gain over the class-prior baseline must be >=")


def _max_seed_variance(gate: str, threshold: float, metric: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    value = _measured(observed.get("seed_variance"))
    if value is None:
        return _gate(gate, "SKIPPED", None, threshold, "measured at promotion, across 3 seeds")
    # Strictly below: the standard reads "variance < max_seed_variance".
    return _verdict(gate, value, value < threshold, threshold, f"variance of {metric} across seeds must be <")


GATE_CHECKS = {
    "min_primary_metric": _min_primary_metric,
    "min_lift_over_baseline": _min_lift_over_baseline,
    "champion_tolerance": _champion_tolerance,
    "max_seed_variance": _max_seed_variance,
    "calibration_vs_prior": _calibration_vs_prior,
}


def _check_gate(gate: str, threshold: Any, metric: str, observed: Mapping[str, Any]) -> dict[str, Any]:
    if gate not in GATE_CHECKS:
        return _gate(gate, "FAIL", None, threshold, "unknown gate: the server cannot check it, so it does not pass")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        return _gate(gate, "FAIL", None, threshold, "threshold is not a number")
    return GATE_CHECKS[gate](gate, float(threshold), metric, observed)


def gate_receipt(gates: Mapping[str, Any], observed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One `{gate, status, observed, threshold, reason}` per configured gate, sorted by gate name.

    `gates` is the standards' `gates` section (`primary_metric` names the metric, every other key is a
    threshold). `observed` holds `primary_metric`, `baseline_primary_metric`, and where known
    `champion_primary_metric` (with `champion_unpaired`, why there is no paired comparison;
    `champion_unreadable`, why a champion's run could not be read, fails the champion gate) and
    `seed_variance`; `baseline_paired`, `champion_paired` and
    `calibration_paired` (tools/paired.paired_improvement results) make the lift, champion and
    calibration gates read the paired lower confidence bound instead of point estimates. Status is PASS, FAIL, or SKIPPED for a gate that
    does not apply yet (no champion; seed variance is measured at promotion). A gate the server does
    not know, a non-numeric threshold or a missing measurement FAILS: the receipt fails closed.
    For lower-is-better metrics (log_loss, brier) every comparison is made in the better direction.
    """
    metric = str(gates.get("primary_metric", "roc_auc"))
    return [_check_gate(gate, gates[gate], metric, observed) for gate in sorted(k for k in gates if k != "primary_metric")]


def gates_passed(receipt: Sequence[Mapping[str, Any]]) -> bool:
    """True when no gate FAILED (SKIPPED gates do not block a run; promotion re-checks them)."""
    return all(entry["status"] != "FAIL" for entry in receipt)
