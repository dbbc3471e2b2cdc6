"""The demand forecast method on synthetic series: no database, no Airflow."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from hdp.analytics.forecast import (
    evaluate,
    forecast_series,
    monthly_series,
    scores,
    seasonal_indices,
    seasonal_naive,
)


def _seasonal(years: int, seed: int, level: float = 200.0, noise: float = 0.15) -> pd.Series:
    """Winter peak (x1.45 in January, x0.55 in July) with multiplicative noise."""
    rng = np.random.default_rng(seed)
    months = np.arange(12 * years)
    season = 1 + 0.45 * np.cos(2 * np.pi * months / 12)
    values = rng.poisson(level * season * rng.lognormal(0, noise, len(months)))
    return pd.Series(
        values.astype(float), index=pd.date_range("2022-01-01", periods=len(months), freq="MS")
    )


def test_forecast_beats_naive_on_known_seasonality():
    series = {f"Y{i:05d}": _seasonal(3, seed=i) for i in range(20)}
    evaluation = evaluate(series, holdout_months=6)
    pooled = evaluation.aggregate()
    assert pooled["forecast"].wape < 0.85 * pooled["naive"].wape
    assert pooled["forecast"].mape < pooled["naive"].mape
    assert set(evaluation.points["method"]) == {"holt_winters"}
    assert len(evaluation.per_drug()) == 20


def test_forecast_follows_the_winter_peak():
    fc = forecast_series(_seasonal(3, seed=1, noise=0.05), horizon=12)
    january, july = fc.values[0], fc.values[6]
    assert fc.months[0] == date(2025, 1, 1) and len(fc.months) == 12
    assert january > 1.8 * july
    assert (fc.lower <= fc.values).all() and (fc.values <= fc.upper).all()


def test_no_seasonality_is_not_invented():
    rng = np.random.default_rng(3)
    flat = rng.poisson(500, 36).astype(float)
    index = seasonal_indices(flat)
    assert np.abs(index - 1).max() < 0.05


def test_short_history_falls_back_to_adjusted_seasonal_naive():
    history = _seasonal(2, seed=4).iloc[:18]  # 18 months: too short for Holt-Winters
    fc = forecast_series(history, horizon=3)
    assert fc.method == "seasonal_naive_adjusted"
    ratio = history.iloc[-3:].sum() / history.iloc[-15:-12].sum()
    expected = history.iloc[6:9].to_numpy() * np.clip(ratio, 0.5, 2.0)
    assert fc.values == pytest.approx(expected)


def test_very_short_and_zero_series():
    short = pd.Series([4.0, 0.0, 8.0], index=pd.date_range("2025-01-01", periods=3, freq="MS"))
    fc = forecast_series(short, horizon=2)
    assert fc.method == "mean" and fc.values == pytest.approx([4.0, 4.0])
    zeros = pd.Series(0.0, index=pd.date_range("2022-01-01", periods=36, freq="MS"))
    fc = forecast_series(zeros, horizon=4)
    assert fc.method == "seasonal_naive_adjusted" and (fc.values == 0).all()


def test_intermittent_series_with_zeros_stays_finite_and_non_negative():
    rng = np.random.default_rng(5)
    lumpy = pd.Series(
        np.where(rng.random(36) < 0.4, 0.0, rng.poisson(20, 36)).astype(float),
        index=pd.date_range("2022-01-01", periods=36, freq="MS"),
    )
    fc = forecast_series(lumpy, horizon=6)
    assert np.isfinite(fc.values).all() and (fc.values >= 0).all() and (fc.lower >= 0).all()


def test_seasonal_naive_is_same_month_last_year():
    y = pd.Series(np.arange(1.0, 25.0), index=pd.date_range("2023-01-01", periods=24, freq="MS"))
    assert seasonal_naive(y, 3) == pytest.approx([13.0, 14.0, 15.0])
    assert seasonal_naive(y, 14)[-2:] == pytest.approx([13.0, 14.0])  # wraps after a year


def test_wape_and_mape_by_hand():
    actual, predicted = [10.0, 0.0, 20.0, 5.0], [12.0, 3.0, 15.0, 5.0]
    s = scores(actual, predicted)
    # |errors| 2 + 3 + 5 + 0 = 10 over |actuals| 35
    assert s.wape == pytest.approx(10 / 35)
    # zero actual left out: (2/10 + 5/20 + 0/5) / 3
    assert s.mape == pytest.approx((0.2 + 0.25 + 0.0) / 3)
    assert math.isnan(scores([0.0], [1.0]).wape)


def test_evaluate_pools_per_drug_and_overall():
    index = pd.date_range("2024-01-01", periods=14, freq="MS")
    a = pd.Series([10.0] * 12 + [10.0, 20.0], index=index)  # naive says 10, 10
    evaluation = evaluate({"A": a}, holdout_months=2)
    naive = evaluation.aggregate()["naive"]
    assert naive.wape == pytest.approx(10 / 30) and naive.mape == pytest.approx(0.25)
    row = evaluation.per_drug().iloc[0]
    assert row["naive_wape"] == pytest.approx(10 / 30)


def test_monthly_series_fills_gaps():
    rows = [
        ("Y1", date(2024, 1, 1), 5),
        ("Y1", date(2024, 3, 1), 7),
        ("Y1", date(2024, 3, 1), 1),
        ("Y2", date(2024, 2, 1), 2),
    ]
    series = monthly_series(rows)
    assert series["Y1"].tolist() == [5.0, 0.0, 8.0]
    assert series["Y2"].tolist() == [2.0, 0.0]
    # the mart's rows: tests/test_forecast_mart.py
