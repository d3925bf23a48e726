"""The server-owned split: stratification, held-out test, temporal ordering, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tools.errors import IntegrityError, InvalidInput
from tools.splits import Fold, SplitPlan, check_temporal_order, plan_split, stratified_kfold, temporal_split, time_values


def imbalanced_labels(n: int = 400, positive_rate: float = 0.2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=int)
    labels[rng.choice(n, int(n * positive_rate), replace=False)] = 1
    return labels


def daily_frame(n: int = 120) -> pd.DataFrame:
    dates = pd.date_range("2021-01-01", periods=n, freq="D")
    # Shuffled rows: the split must order by time, not trust the row order.
    order = np.random.default_rng(3).permutation(n)
    return pd.DataFrame({"application_date": dates[order].strftime("%Y-%m-%d"), "x": np.arange(n)})


def test_stratified_kfold_partitions_every_row_exactly_once_per_fold() -> None:
    labels = imbalanced_labels()
    plan = stratified_kfold(labels, n_splits=5, test_size=0.2, seed=7)
    assert len(plan.folds) == 5
    for fold in plan.folds:
        combined = np.concatenate([fold.train, fold.validation, plan.test])
        assert sorted(combined.tolist()) == list(range(labels.size))
    validations = np.concatenate([f.validation for f in plan.folds])
    assert sorted(validations.tolist()) == sorted(set(range(labels.size)) - set(plan.test.tolist()))


def test_stratified_kfold_keeps_the_class_balance_in_test_and_folds() -> None:
    labels = imbalanced_labels(positive_rate=0.2)
    plan = stratified_kfold(labels, n_splits=4, test_size=0.25, seed=1)
    assert plan.test.size == 100
    assert labels[plan.test].mean() == pytest.approx(0.2, abs=0.01)
    for fold in plan.folds:
        assert labels[fold.validation].mean() == pytest.approx(0.2, abs=0.02)
        assert labels[fold.train].mean() == pytest.approx(0.2, abs=0.02)


def test_held_out_test_rows_never_appear_in_any_fold() -> None:
    plan = stratified_kfold(imbalanced_labels(), n_splits=5, test_size=0.2, seed=11)
    test = set(plan.test.tolist())
    for fold in plan.folds:
        assert test.isdisjoint(fold.train.tolist())
        assert test.isdisjoint(fold.validation.tolist())


def test_same_seed_gives_an_identical_split_and_a_different_seed_does_not() -> None:
    labels = imbalanced_labels()
    first = stratified_kfold(labels, n_splits=5, test_size=0.2, seed=42)
    second = stratified_kfold(labels, n_splits=5, test_size=0.2, seed=42)
    other = stratified_kfold(labels, n_splits=5, test_size=0.2, seed=43)
    assert first.description == second.description
    assert np.array_equal(first.test, second.test)
    assert all(np.array_equal(a.validation, b.validation) for a, b in zip(first.folds, second.folds))
    assert first.split_sha256 != other.split_sha256


def test_description_reports_counts_rates_and_a_split_hash() -> None:
    plan = stratified_kfold(imbalanced_labels(), n_splits=2, test_size=0.2, seed=0)
    described = plan.description
    assert described["strategy"] == "stratified_kfold" and described["seed"] == 0 and described["rows"] == 400
    assert described["test"] == {"rows": 80, "positive_rate": 0.2, "positives": 16}
    assert len(described["split_sha256"]) == 64


@pytest.mark.parametrize(
    ("labels", "kwargs", "fragment"),
    [
        ([0, 1, 2, 1] * 10, {"n_splits": 2, "test_size": 0.2}, "0/1"),
        ([0, 1, None, 1] * 10, {"n_splits": 2, "test_size": 0.2}, "missing"),
        ([0] * 39 + [1], {"n_splits": 5, "test_size": 0.2}, "minority class"),
        ([0, 1] * 20, {"n_splits": 1, "test_size": 0.2}, "n_splits"),
        ([0, 1] * 20, {"n_splits": 2, "test_size": 1.5}, "test_size"),
    ],
)
def test_stratified_kfold_refuses_bad_labels_or_config(labels: list, kwargs: dict, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        stratified_kfold(labels, seed=0, **kwargs)


def test_temporal_split_by_fractions_puts_later_rows_in_later_windows() -> None:
    frame = daily_frame()
    plan = temporal_split(frame, time_column="application_date", windows={"test_size": 0.2, "validation_size": 0.1})
    times = pd.to_datetime(frame["application_date"])
    fold = plan.folds[0]
    assert (fold.train.size, fold.validation.size, plan.test.size) == (84, 12, 24)
    assert times.iloc[fold.train].max() < times.iloc[fold.validation].min()
    assert times.iloc[fold.validation].max() < times.iloc[plan.test].min()
    assert plan.description["windows"]["test"] == ["2021-04-07T00:00:00+00:00", "2021-04-30T00:00:00+00:00"]


def test_temporal_split_by_date_bounds_uses_inclusive_upper_bounds() -> None:
    frame = daily_frame()
    plan = temporal_split(frame, time_column="application_date", windows={"train_end": "2021-02-28", "validation_end": "2021-03-31"})
    times = pd.to_datetime(frame["application_date"])
    assert times.iloc[plan.folds[0].train].max() == pd.Timestamp("2021-02-28")
    assert times.iloc[plan.folds[0].validation].min() == pd.Timestamp("2021-03-01")
    assert times.iloc[plan.test].min() == pd.Timestamp("2021-04-01")


def test_temporal_split_never_splits_rows_with_the_same_time_across_windows() -> None:
    # 10 distinct months, 10 rows each: a 15% cut falls inside a month and must round to its start.
    frame = pd.DataFrame({"t": np.repeat(np.arange(10), 10)})
    plan = temporal_split(frame, time_column="t", windows={"test_size": 0.15, "validation_size": 0.15})
    times = frame["t"]
    assert set(times.iloc[plan.folds[0].validation]).isdisjoint(set(times.iloc[plan.test]))
    assert set(times.iloc[plan.folds[0].train]).isdisjoint(set(times.iloc[plan.folds[0].validation]))
    check_temporal_order(times.astype(float), plan)


def test_temporal_split_is_deterministic_and_ignores_row_order() -> None:
    frame = daily_frame()
    first = temporal_split(frame, time_column="application_date", windows={"test_size": 0.2})
    again = temporal_split(frame, time_column="application_date", windows={"test_size": 0.2})
    assert first.description == again.description
    reordered = frame.sort_values("application_date").reset_index(drop=True)
    by_time = temporal_split(reordered, time_column="application_date", windows={"test_size": 0.2})
    assert sorted(frame["x"].iloc[first.test]) == sorted(reordered["x"].iloc[by_time.test])


@pytest.mark.parametrize(
    ("frame", "windows", "fragment"),
    [
        (pd.DataFrame({"x": [1, 2, 3]}), {"test_size": 0.2}, "no such column"),
        (pd.DataFrame({"t": ["2021-01-01", "not a date", "2021-01-03"]}), {"test_size": 0.2}, "unparsable"),
        (pd.DataFrame({"t": ["2021-01-01", None, "2021-01-03"]}), {"test_size": 0.2}, "missing"),
        (daily_frame(), {"train_end": "2022-01-01", "validation_end": "2022-02-01"}, "'validation' is empty"),
        (daily_frame(), {"train_end": "2021-03-01", "validation_end": "2021-02-01"}, "before"),
        (daily_frame(), {"train_end": "soon", "validation_end": "2021-02-01"}, "not a date"),
        (daily_frame(), {"test_size": 0.6, "validation_size": 0.5}, "sum"),
        (pd.DataFrame({"t": [1, 1, 1, 1, 1]}), {"test_size": 0.2}, "is empty"),
    ],
)
def test_temporal_split_refuses_unusable_time_columns_and_windows(frame: pd.DataFrame, windows: dict, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        temporal_split(frame.rename(columns={"application_date": "t"}), time_column="t", windows=windows)


def test_time_values_accept_numeric_ordinal_time() -> None:
    assert time_values(pd.DataFrame({"month": [3, 1, 2]}), "month").tolist() == [3.0, 1.0, 2.0]


def test_check_temporal_order_detects_a_leaking_plan() -> None:
    times = pd.Series([1.0, 2.0, 3.0, 4.0])
    leaking = SplitPlan("temporal_split", [Fold(np.array([0, 3]), np.array([1]))], np.array([2]))
    with pytest.raises(IntegrityError, match="leaks"):
        check_temporal_order(times, leaking)


def test_plan_split_dispatches_on_strategy_and_refuses_unknown_ones() -> None:
    frame = daily_frame()
    labels = imbalanced_labels(n=120)
    kfold = plan_split(frame, labels, {"strategy": "stratified_kfold", "n_splits": 3, "test_size": 0.2}, seed=1)
    temporal = plan_split(frame, labels, {"strategy": "temporal_split", "n_splits": 3, "test_size": 0.2}, seed=1, time_column="application_date")
    assert (kfold.strategy, len(kfold.folds)) == ("stratified_kfold", 3)
    assert (temporal.strategy, len(temporal.folds)) == ("temporal_split", 1)
    assert temporal.description["window_config"] == {"test_size": "0.2"}
    with pytest.raises(InvalidInput, match="unknown split strategy"):
        plan_split(frame, labels, {"strategy": "random", "test_size": 0.2}, seed=1)
    with pytest.raises(InvalidInput, match="time_column"):
        plan_split(frame, labels, {"strategy": "temporal_split", "test_size": 0.2}, seed=1)


def test_a_long_month_column_parses_to_the_first_of_each_month() -> None:
    months = [f"{name}-2018" for name in ("Jan", "Feb", "Mar", "Apr", "May", "Jun")] * 50  # 300 values, past the sample
    parsed = time_values(pd.DataFrame({"issue_d": months}), "issue_d")
    assert parsed.iloc[-1] == pd.Timestamp("2018-06-01", tz="UTC") and parsed.notna().all()


def test_a_month_format_must_fit_the_whole_column_not_only_its_first_values() -> None:
    values = ["Mar-2018"] * 150 + ["2018-03-15 10:00"]  # the first 100 fit %b-%Y, the last does not
    parsed = time_values(pd.DataFrame({"issue_d": values}), "issue_d")
    assert parsed.iloc[-1] == pd.Timestamp("2018-03-15 10:00", tz="UTC")  # parsed per value, not coerced to NaT by %b-%Y


@pytest.mark.parametrize(("date_format", "with_time"), [("%d/%m/%Y", False), ("%d.%m.%Y", True), ("%m/%d/%Y", False), ("%d-%m-%y", False)])
def test_numeric_day_month_dates_are_read_one_way_for_the_whole_column(date_format: str, with_time: bool) -> None:
    # 01/02/2021 and 13/02/2021 in one column: read per value, the first became 2 January.
    dates = pd.date_range("2021-01-01", periods=120, freq="D") + pd.Timedelta(hours=9 if with_time else 0)
    text = dates.strftime(date_format + (" %H:%M" if with_time else ""))
    parsed = time_values(pd.DataFrame({"application_date": text}), "application_date")
    assert parsed.tolist() == list(dates.tz_localize("UTC"))


def test_a_temporal_split_on_day_first_dates_tests_on_the_latest_rows() -> None:
    frame = daily_frame()
    frame["application_date"] = pd.to_datetime(frame["application_date"]).dt.strftime("%d/%m/%Y")
    plan = temporal_split(frame, time_column="application_date", windows={"test_size": 0.25})
    tested = pd.to_datetime(frame["application_date"].iloc[plan.test], format="%d/%m/%Y")
    trained = pd.to_datetime(frame["application_date"].iloc[plan.folds[0].train], format="%d/%m/%Y")
    assert tested.min() > trained.max() and tested.max() == pd.Timestamp("2021-04-30")


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (["01/02/2021", "02/03/2021", "12/11/2021"], "every value reads both as day/month and as month/day"),
        (["13/02/2021", "02/13/2021"], "no value order fits day/month or month/day throughout"),
        (["13/02/2021", "2021-02-14"], "mixes numeric day/month dates ('13/02/2021') with other forms ('2021-02-14')"),
    ],
    ids=["ambiguous", "both_orders", "mixed_forms"],
)
def test_day_month_dates_that_cannot_be_read_one_way_are_refused_with_the_iso_form_to_import(values: list[str], says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        time_values(pd.DataFrame({"application_date": values}), "application_date")
    assert refused.value.rule_id == "split.time_column" and says in refused.value.reason
    assert "ISO 8601 (2020-02-13)" in refused.value.remediation and "operator" in refused.value.remediation
