"""Messy lending data the tests generate (no downloaded datasets): what a bank's real extract looks
like to mlgate, small enough for a test.

One row per loan. The label `loan_status` is text ("Fully Paid", "Late (31-120 days)", ...) and a
loan is bad when it is any of BAD_STATUSES. The time column `issue_d` holds month strings such as
"Mar-2018", with more loans in later months (so a 20% temporal cut lands inside a month). `age`
is a numeric protected attribute (with gaps), `gender` a text one (with gaps); `borrower_name`,
`email` and `member_id` are PII; `desc` is free text; `income` and `emp_length` have missing values.
With `leaks=True` three columns give the label away: `int_rate_final` (a near-perfect numeric proxy),
`recoveries` (non-zero only after a charge-off) and `status_note` (a near-duplicate of the label's
text with typos).

Same arguments, same frame: every random draw comes from `numpy.random.default_rng(seed)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GOOD_STATUSES = ("Fully Paid", "Current")
BAD_STATUSES = ("Late (31-120 days)", "Charged Off", "In Grace Period")
LEAK_COLUMNS = ("int_rate_final", "recoveries", "status_note")
PII_COLUMNS = ("member_id", "borrower_name", "email")
PROTECTED = ("age", "gender")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WORDS = ("debt", "consolidation", "car", "repair", "wedding", "medical", "bills", "home", "improvement", "business", "credit", "card")

STANDARDS: dict[str, Any] = {
    "label": {"target": "loan_status", "positive_class": list(BAD_STATUSES)},
    "time_column": "issue_d",
    "pii_columns": list(PII_COLUMNS),
    "protected_attributes": list(PROTECTED),
}


def _months(rng: np.random.Generator, rows: int, months: int) -> np.ndarray:
    """Month strings from Jan-2017 on; later months hold more loans (a growing book)."""
    weights = np.linspace(1.0, 3.0, months)
    index = np.sort(rng.choice(months, size=rows, p=weights / weights.sum()))
    return np.array([f"{MONTHS[i % 12]}-{2017 + i // 12}" for i in index], dtype=object)


def _statuses(rng: np.random.Generator, bad: np.ndarray) -> np.ndarray:
    good = rng.choice(GOOD_STATUSES, size=bad.size)
    worse = rng.choice(BAD_STATUSES, size=bad.size, p=[0.3, 0.5, 0.2])
    return np.where(bad, worse, good).astype(object)


def _with_gaps(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(object)
    out[rng.random(values.size) < share] = None
    return out


def _typo(rng: np.random.Generator, text: str) -> str:
    text = text.lower() if rng.random() < 0.5 else text.upper()
    return text.replace("a", "@", 1) if rng.random() < 0.3 else text + " "


def _leaks(rng: np.random.Generator, statuses: np.ndarray, bad: np.ndarray) -> dict[str, Any]:
    return {
        "int_rate_final": np.round(np.where(bad, 24.0, 9.0) + rng.normal(0, 0.8, bad.size), 2),
        "recoveries": np.where(np.isin(statuses, ["Charged Off"]), np.round(rng.uniform(50, 900, bad.size), 2), 0.0),
        "status_note": np.array([_typo(rng, s) for s in statuses], dtype=object),
    }


def lending_frame(rows: int = 400, *, seed: int = 7, leaks: bool = False, months: int = 12) -> pd.DataFrame:
    """The messy lending frame described in the module docstring."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(list("ABCDEFG"), size=rows, p=[0.2, 0.25, 0.2, 0.15, 0.1, 0.06, 0.04])
    income = np.round(rng.lognormal(10.8, 0.45, rows), -2)
    risk = (np.searchsorted(list("ABCDEFG"), grade) - 2.2) * 0.7 - (np.log(income) - 10.8) * 1.2 + rng.normal(0, 1.0, rows)
    bad = rng.random(rows) < 1 / (1 + np.exp(-(risk - 0.9)))
    statuses = _statuses(rng, bad)
    frame = pd.DataFrame({
        "member_id": np.arange(10_000, 10_000 + rows),
        "borrower_name": [f"Borrower {i}" for i in range(rows)],
        "email": [f"b{i}@example.com" for i in range(rows)],
        "issue_d": _months(rng, rows, months),
        "grade": grade,
        "income": _with_gaps(rng, income, 0.08),
        "emp_length": _with_gaps(rng, rng.choice(["< 1 year", "1 year", "5 years", "10+ years"], size=rows), 0.1),
        "desc": [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 8)))) for _ in range(rows)],
        "age": _with_gaps(rng, rng.integers(19, 76, rows), 0.03),
        "gender": _with_gaps(rng, rng.choice(["F", "M", "X"], size=rows, p=[0.48, 0.49, 0.03]), 0.05),
        "loan_status": statuses,
    })  # fmt: skip
    frame["income"] = pd.to_numeric(frame["income"])
    frame["age"] = pd.to_numeric(frame["age"])
    if leaks:
        for name, values in _leaks(rng, statuses, bad).items():
            frame[name] = values
    return frame


def write_lending_csv(path: Path, rows: int = 400, **options: Any) -> Path:
    """The frame as a CSV file (what an operator hands to `mlgate data add`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lending_frame(rows, **options).to_csv(path, index=False)
    return path


def bad_labels(frame: pd.DataFrame) -> np.ndarray:
    """The 0/1 truth the generator used: 1 where the status is one of BAD_STATUSES."""
    return frame["loan_status"].isin(BAD_STATUSES).to_numpy(dtype=np.int8)
