"""A synthetic credit-default dataset for the demo and the tests.

Deterministic for a seed. It has what real bank data has: PII columns, protected attributes, a
time column, string categories, missing values and class imbalance (~20% defaults).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

EMPLOYMENT = np.array(["salaried", "self_employed", "contractor", "unemployed"])


def _risk(income: np.ndarray, debt: np.ndarray, history: np.ndarray, employment: np.ndarray) -> np.ndarray:
    emp_risk = np.select([employment == "unemployed", employment == "contractor"], [1.2, 0.4], 0.0)
    return -0.9 - 0.9 * np.log(income / 40_000) + 2.2 * debt - 0.015 * history + emp_risk


def credit_frame(rows: int = 2_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=10.6, sigma=0.45, size=rows).round(2)
    debt = rng.beta(2, 5, size=rows).round(4)
    history = rng.integers(0, 240, size=rows)
    employment = rng.choice(EMPLOYMENT, size=rows, p=[0.6, 0.2, 0.15, 0.05])
    noise = rng.logistic(size=rows)
    default = (_risk(income, debt, history, employment) + noise > 0).astype(int)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "full_name": [f"Customer {i}" for i in range(rows)],
            "email": [f"customer{i}@example.com" for i in range(rows)],
            "gender": rng.choice(["female", "male", "unspecified"], size=rows, p=[0.48, 0.48, 0.04]),
            "age_band": rng.choice(["18-29", "30-44", "45-64", "65+"], size=rows),
            "application_date": pd.date_range("2021-01-01", periods=rows, freq="6h").strftime("%Y-%m-%d"),
            "income": income,
            "debt_ratio": debt,
            "credit_history_months": history,
            "employment_type": employment,
            "default": default,
        }
    )
    frame.loc[rng.random(rows) < 0.05, "income"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "employment_type"] = None
    return frame


def write_credit_csv(path: Path, rows: int = 2_000, seed: int = 7) -> Path:
    credit_frame(rows, seed).to_csv(path, index=False)
    return path
